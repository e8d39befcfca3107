/* Give back memory the idle supervisor no longer uses: heap slack and clean library pages. */
#ifndef PGENTRY_SUPERVISE_MEMTRIM_H
#define PGENTRY_SUPERVISE_MEMTRIM_H

#include <stddef.h>

/* Once the database work is done, most of pgentry's resident memory is code, read-only data
 * and never-written initialised data of libpq, libcurl and OpenSSL that the supervisor never
 * uses again. This returns the heap's free tail (malloc_trim; a no-op on musl) and unmaps from
 * this process every resident page of a private file mapping that is still the file's own page
 * (per /proc/self/pagemap): code, read-only data, and the unwritten pages of writable data. A
 * page the program wrote (relocated data, a variable) is anonymous and is never touched, so no
 * write is lost; writable mappings are trimmed only when this is the process's only thread
 * (and with every signal blocked meanwhile), since a page written between the pagemap read
 * and madvise() would lose that write. Dropped pages stay in the page cache and come back on a
 * minor fault if ever needed. Returns the kilobytes released, or -1 when /proc is not readable
 * (nothing is done then). Linux only; cheap (one read of maps and of the mapped part of
 * pagemap); call from the loop thread once the database work is over. */
long pge_memtrim_release(void);

#endif
