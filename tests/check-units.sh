#!/bin/sh
# Inside a layer, no circles: the units of a layer (x.c with its header x.h)
# include each other one way only. A unit depends on another when its .c or
# its .h has #include "other.h" of a header in the same directory; this
# fails, naming the circle, if those dependencies have a cycle (tsort finds
# it). check-layers.sh keeps the layers one-way; this keeps the files of
# each layer one-way (docs/internals/daemon-units.md).
#
# A header whose name differs from its .c says so below (unit_of): cfg.h is
# config.c's header, since config.h is autoconf's.
set -u
src=${top_srcdir:-.}/src
fail=0

unit_of() { # file name -> unit name
    b=${1##*/}
    b=${b%.*}
    case $b in
    cfg) echo config ;;
    *) echo "$b" ;;
    esac
}

check_dir() { # directory
    dir=$1
    edges=$(for f in "$dir"/*.c "$dir"/*.h; do
        [ -f "$f" ] || continue
        from=$(unit_of "$f")
        echo "$from $from" # every unit is a node, even one that includes nothing here
        sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"/]*\.h\)".*/\1/p' "$f" |
            while read -r h; do
                [ -f "$dir/$h" ] || continue # not this directory's (config.h, util.h, ...)
                to=$(unit_of "$h")
                [ "$to" = "$from" ] || echo "$from $to"
            done
    done)
    if ! out=$(printf '%s\n' "$edges" | LC_ALL=C tsort 2>&1 >/dev/null) || [ -n "$out" ]; then
        echo "${dir#"${top_srcdir:-.}"/}: its units include each other in a circle:"
        printf '%s\n' "$out" | sed -n 's/^tsort: //p' | grep -v 'input contains a loop' |
            sed 's/^/    /'
        echo "  (a unit -> the units whose headers it includes:)"
        printf '%s\n' "$edges" | awk '$1 != $2' | sort -u | awk '
            { to[$1] = to[$1] " " $2 }
            END { for (u in to) print "    " u " ->" to[u] }' | sort
        fail=1
    fi
}

for d in "$src"/*/; do
    check_dir "${d%/}"
done
[ $fail -eq 0 ] && echo "units: no circles"
exit $fail
