#!/usr/bin/env bash
# Install MathJax 3 (npm package mathjax@3.2.2) into the book's static folder: install time, not run time.
# Without npm the book still builds; formulas then load MathJax from its CDN when the page is viewed.
set -euo pipefail
dest=${1:?destination folder}
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_mathjax: npm not found; the book will use MathJax from its CDN" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mathjax@3.2.2 >/dev/null && tar xzf mathjax-3.2.2.tgz)
mkdir -p "$dest/output/chtml/fonts"
cp "$tmp/package/es5/tex-chtml.js" "$dest/"
cp -r "$tmp/package/es5/output/chtml/fonts/woff-v2" "$dest/output/chtml/fonts/"
echo "fetch_mathjax: MathJax 3.2.2 installed in $dest"
