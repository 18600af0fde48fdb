#!/usr/bin/env bash
# Regenerates the man pages semples(1) and semplesd(8) and the shell completions (bash, zsh,
# fish) from the built binaries. It needs a build first (`swift build`, or `swift build -c
# release` and BUILD=.build/release). The manual generator of swift-argument-parser is built from
# the package's checkout into .build/manual-tool the first time. man/semples-manifest.5 is
# written by hand and left alone.
# Usage: scripts/make-docs.sh [BUILD_FOLDER]      (default .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
build="${1:-${BUILD:-.build/debug}}"

for bin in semples semplesd; do
  if [ ! -x "$build/$bin" ]; then
    echo "make-docs: '$build/$bin' is missing; run 'swift build' first" >&2
    exit 1
  fi
done

parser=.build/checkouts/swift-argument-parser
tool=.build/manual-tool/debug/generate-manual
if [ ! -x "$tool" ]; then
  [ -d "$parser" ] || { echo "make-docs: '$parser' is missing; run 'swift build' first" >&2; exit 1; }
  swift build --package-path "$parser" --product generate-manual --scratch-path .build/manual-tool
fi

mkdir -p man completions
# A fixed date keeps the pages unchanged when only the build changes.
date="${SEMPLES_DOCS_DATE:-$(git log -1 --format=%cs 2>/dev/null || date +%F)}"
"$tool" "$build/semples" --section 1 --date "$date" -o man
"$tool" "$build/semplesd" --section 8 --date "$date" -o man

# Hand-written sections from man/extra/: configuration, environment and files before EXIT
# STATUS, SEE ALSO at the end.
for page in semples.1 semplesd.8; do
  extra="man/extra/$page.in"
  [ -e "$extra" ] || continue
  awk -v extra="$extra" '
    BEGIN {
      tail = 0
      while ((getline line < extra) > 0) {
        if (line ~ /^\.Sh "?SEE ALSO/) tail = 1
        if (tail) after = after line "\n"; else before = before line "\n"
      }
    }
    /^\.Sh "?EXIT STATUS/ && !done { printf "%s", before; done = 1 }
    { print }
    END { if (!done) printf "%s", before; printf "%s", after }
  ' "man/$page" > "man/$page.tmp"
  mv "man/$page.tmp" "man/$page"
done

for bin in semples semplesd; do
  "$build/$bin" --generate-completion-script bash > "completions/$bin.bash"
  "$build/$bin" --generate-completion-script zsh > "completions/_$bin"
  "$build/$bin" --generate-completion-script fish > "completions/$bin.fish"
done
echo "make-docs: wrote man/semples.1, man/semplesd.8 and completions/ from '$build'"
