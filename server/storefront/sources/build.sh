#!/bin/sh
# Rebuilds every thumbnail.png and document.pdf of the sample storefront from the
# SVG sources in this folder. Needs rsvg-convert (Debian: apt-get install librsvg2-bin)
# and the DejaVu fonts (Debian: fonts-dejavu-core).
#
#   sh server/storefront/sources/build.sh
set -eu
cd "$(dirname "$0")"
products=../sample/products

# Thumbnails: sources/<product-id>.svg -> sample/products/<product-id>/thumbnail.png
for svg in *.svg; do
    id=${svg%.svg}
    [ -d "$products/$id" ] || { echo "no product folder for $svg" >&2; exit 1; }
    rsvg-convert -f png -w 320 -h 240 -o "$products/$id/thumbnail.png" "$svg"
    echo "$products/$id/thumbnail.png"
done

# Static PDFs: sources/pdf/<product-id>-p1.svg [-p2.svg ...] -> sample/products/<product-id>/document.pdf
# (one SVG per page, in page order; rsvg-convert writes one PDF page per input file)
for first in pdf/*-p1.svg; do
    id=$(basename "$first" -p1.svg)
    [ -d "$products/$id" ] || { echo "no product folder for $first" >&2; exit 1; }
    pages=$(ls pdf/"$id"-p*.svg | sort -V)
    # shellcheck disable=SC2086
    rsvg-convert -f pdf -o "$products/$id/document.pdf" $pages
    echo "$products/$id/document.pdf"
done
