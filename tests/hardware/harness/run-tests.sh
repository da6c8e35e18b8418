#!/bin/sh
# Inside the picamera2 root (ci/roots/enter.sh), from the project folder: build the dma-heap shim,
# then run tests/hardware against real picamera2 and libcamera with the harness in place.
# Arguments go to pytest (default: tests/hardware).
set -eu
harness=tests/hardware/harness
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o /w/dma_heap_shim.so "$harness/dma_heap_shim.c"
[ "$#" -gt 0 ] || set -- tests/hardware

export MONITOR_TEST_ROOT=picamera2              # tests/hardware/conftest.py: the real stack is here
export LD_PRELOAD=/w/dma_heap_shim.so           # /dev/dma_heap, which this machine lacks
export PYTHONPATH="$PWD/$harness/python"        # pykms stand-in; sitecustomize adapts the virtual camera
export GPIOZERO_PIN_FACTORY=mock
export LIBCAMERA_LOG_LEVELS="${LIBCAMERA_LOG_LEVELS:-*:WARN}"
# A test that hangs (a camera that never answers) prints where it hangs after two minutes.
# picamera2 and videodev2 warn of their own deprecated calls: theirs to mend, not ours.
exec python -m pytest -p no:cacheprovider -o faulthandler_timeout=120 \
    -W 'ignore::DeprecationWarning:videodev2.videodev2' \
    -W 'ignore::DeprecationWarning:picamera2.previews.null_preview' "$@"
