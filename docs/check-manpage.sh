#!/usr/bin/env bash
# Fail when pgentry's manual page and `pgentry --help` disagree: every option, environment
# variable, subcommand and exit code of --help must be in the page, and every option and
# PGENTRY_* variable of the page must exist (no documented option that pgentry does not have).
# Usage: docs/check-manpage.sh PGENTRY_BINARY PGENTRY_1   (PGENTRY_1: scdoc's roff output)
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 PGENTRY_BINARY PGENTRY_1" >&2; exit 64; }
bin=$1
page=$2
[ -x "$bin" ] || { echo "check-manpage: $bin is not an executable" >&2; exit 1; }
[ -s "$page" ] || { echo "check-manpage: $page is missing or empty" >&2; exit 1; }

help=$("$bin" --help)
# The page as plain text: drop roff requests' font and spacing escapes (scdoc's output uses
# \fB \fI \fR, \& and \- only), keep every source line whole so no word is hyphenated.
text=$(sed -e 's/\\f[BIRP]//g' -e 's/\\&//g' -e 's/\\-/-/g' -e 's/\\e/\\/g' "$page")
# One section of the page, from its .SH line to the next.
section() { awk -v s="$1" '/^\.SH /{ on = ($0 == ".SH " s) ; next } on' <<<"$text"; }

# The headings of a section's entries (scdoc indents each entry's body with .RS 4): an option
# must have an entry of its own, a mention in another option's text does not count.
entries() { section "$1" | awk '$0 == ".RS 4" { print prev } { prev = $0 }'; }
documented=$(entries OPTIONS; entries COMMANDS)
environment=$(entries OPTIONS; entries ENVIRONMENT)

missing=()
# contains WORD HAYSTACK: WORD appears as a whole token (not inside a longer name).
contains() {
    local w=${1//./\\.} re
    w=${w//+/\\+}
    re="(^|[^A-Za-z0-9_-])$w([^A-Za-z0-9_-]|\$)"
    [[ $2 =~ $re ]]
}

# Long and short options of --help.
# Long options wherever --help names them; short ones where a line of --help starts with one
# (so "/bin/sh -c" in a description is not taken for an option).
help_flags=$( (grep -Eo -- '(^|[ ,(|])--[a-zA-Z][a-zA-Z-]*' <<<"$help" | sed 's/^[ ,(|]//'
    grep -Eo -- '^ +-[a-zA-Z]\b' <<<"$help" | tr -d ' ') | sort -u)
for f in $help_flags; do
    contains "$f" "$documented" || missing+=("option $f (no entry in OPTIONS or COMMANDS)")
done
# Environment variables of --help.
for v in $(grep -Eo '\b(PGENTRY_[A-Z_]+|DATABASE_URL)\b' <<<"$help" | sort -u); do
    contains "$v" "$environment" || missing+=("variable $v (no entry in OPTIONS or ENVIRONMENT)")
done
# Subcommands: the usage lines "  pgentry WORD ...".
for c in $(awk '$1 == "pgentry" && $2 ~ /^[a-z]+$/ { print $2 }' <<<"$help" | sort -u); do
    grep -Eq "^$c( |$)" <<<"$(entries COMMANDS)" || missing+=("subcommand $c (no entry in COMMANDS)")
done
# Exit codes: every number of the "Exit codes:" paragraph has its entry in EXIT STATUS.
codes=$(sed -n '/^Exit codes:/,/^$/p' <<<"$help" | grep -Eo '\b[0-9]{1,3}\b' | sort -un)
[ -n "$codes" ] || missing+=("exit codes (no 'Exit codes:' paragraph in --help to compare with)")
exits=$(entries 'EXIT STATUS')
for n in $codes; do
    grep -Eq "^($n|[0-9]+, $n|$n, [0-9]+|$n\+N)\$" <<<"$exits" || missing+=("exit code $n")
done

# The other way: the page documents nothing pgentry does not have.
extra=()
# An option is known when pgentry does not call it unknown: "--opt=x --version" either prints
# the version or complains about the value, never running anything (flags are read first);
# a switch that takes no "=value" at all (--sql) is tried as "--opt --version".
probe() { env -i "$bin" "$@" --version 2>&1 || true; }
for f in $(section OPTIONS | grep -Eo -- '(^|[ ,(|])--[a-zA-Z][a-zA-Z-]*' | sed 's/^[ ,(|]//' | sort -u); do
    contains "$f" "$help" && continue
    if grep -q 'unknown option' <<<"$(probe "$f=x")" && grep -q 'unknown option' <<<"$(probe "$f")"; then
        extra+=("option $f")
    fi
done
for v in $(grep -Eo '\bPGENTRY_[A-Z_]*[A-Z]\b' <<<"$text" | sort -u); do
    contains "$v" "$help" || extra+=("variable $v")
done

for m in "${missing[@]}"; do echo "check-manpage: the man page lacks $m (from pgentry --help)" >&2; done
for e in "${extra[@]}"; do echo "check-manpage: the man page documents $e, which pgentry does not have" >&2; done
[ ${#missing[@]} -eq 0 ] && [ ${#extra[@]} -eq 0 ] || exit 1
echo "check-manpage: $(wc -w <<<"$help_flags") options, $(grep -Eo '\bPGENTRY_[A-Z_]+\b' <<<"$help" | sort -u | wc -l) variables, the subcommands and $(wc -w <<<"$codes") exit codes of --help are in the page, and nothing more"
