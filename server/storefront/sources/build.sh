#!/bin/sh
# Rebuilds the generated files of the sample storefront from the SVG sources in this folder:
#   <product-id>.svg             -> sample/products/<product-id>/thumbnail.png (320 x 240 px)
#   images/<product-id>/<name>.svg -> sample/products/<product-id>/images/<name>.png (size from the SVG)
#   pdf/<product-id>-pN.svg      -> sample/products/<product-id>/pages/page-N.svg (copied as they are) and
#                                   sample/products/<product-id>/document.pdf (static products)
# Needs rsvg-convert (Debian: apt-get install librsvg2-bin) and, for the thumbnails, the DejaVu fonts
# (Debian: fonts-dejavu-core). The PDFs are made with the fonts in ../sample/fonts only, so they look the same on
# every machine.
#
#   sh server/storefront/sources/build.sh
set -eu
cd "$(dirname "$0")"
products=../sample/products
fonts=$(cd ../sample/fonts && pwd)

# Two fontconfig set-ups: the shipped fonts alone (PDFs), and the system fonts plus the shipped ones (thumbnails).
fc=$(mktemp -d)
trap 'rm -rf "$fc"' EXIT
cat > "$fc/shipped.conf" <<CONF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><dir>$fonts</dir><cachedir>$fc/cache</cachedir></fontconfig>
CONF
cat > "$fc/system.conf" <<CONF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>$fonts</dir></fontconfig>
CONF

# Thumbnails: sources/<product-id>.svg -> sample/products/<product-id>/thumbnail.png
for svg in *.svg; do
    id=${svg%.svg}
    [ -d "$products/$id" ] || { echo "no product folder for $svg" >&2; exit 1; }
    FONTCONFIG_FILE="$fc/system.conf" rsvg-convert -f png -w 320 -h 240 -o "$products/$id/thumbnail.png" "$svg"
    echo "$products/$id/thumbnail.png"
done

# Pictures offered by choice fields: sources/images/<product-id>/<name>.svg -> sample/products/<product-id>/images/<name>.png
for svg in images/*/*.svg; do
    [ -e "$svg" ] || continue
    id=$(basename "$(dirname "$svg")")
    name=$(basename "$svg" .svg)
    [ -d "$products/$id" ] || { echo "no product folder for $svg" >&2; exit 1; }
    mkdir -p "$products/$id/images"
    FONTCONFIG_FILE="$fc/shipped.conf" rsvg-convert -f png -o "$products/$id/images/$name.png" "$svg"
    echo "$products/$id/images/$name.png"
done

# Static products: sources/pdf/<product-id>-p1.svg [-p2.svg ...] -> pages/page-N.svg (preview) and document.pdf
# (one SVG per page, in page order; rsvg-convert writes one PDF page per input file)
for first in pdf/*-p1.svg; do
    id=$(basename "$first" -p1.svg)
    [ -d "$products/$id" ] || { echo "no product folder for $first" >&2; exit 1; }
    pages=$(ls pdf/"$id"-p*.svg | sort -V)
    rm -rf "$products/$id/pages"
    mkdir -p "$products/$id/pages"
    for page in $pages; do
        n=${page##*-p}
        cp "$page" "$products/$id/pages/page-${n%.svg}.svg"
    done
    # shellcheck disable=SC2086
    FONTCONFIG_FILE="$fc/shipped.conf" rsvg-convert -f pdf -o "$products/$id/document.pdf" $pages
    echo "$products/$id/document.pdf"
done
