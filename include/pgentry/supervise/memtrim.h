/* Give back memory the idle supervisor no longer uses: heap slack and clean library pages. */
#ifndef PGENTRY_SUPERVISE_MEMTRIM_H
#define PGENTRY_SUPERVISE_MEMTRIM_H

#include <stddef.h>

/* Once the database work is done, most of pgentry's resident memory is code and read-only
 * data of libpq, libcurl, OpenSSL, GnuTLS and Kerberos that the supervisor never runs again.
 * This returns the heap's free tail (malloc_trim) and unmaps from this process the resident
 * pages of private file mappings that were never written: executable mappings, and read-only
 * mappings holding no copied-on-write page (checked in /proc/self/smaps, so relocated RELRO
 * data is never touched). Those pages stay in the page cache and come back on a minor fault if
 * ever needed; nothing changes for the program. Returns the kilobytes of RSS released as
 * smaps reported them, or -1 when /proc is not readable (nothing is done then). Linux only;
 * cheap (one read of smaps); call from the loop thread when no other thread runs code from
 * those libraries. */
long pge_memtrim_release(void);

#endif
