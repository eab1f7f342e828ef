#!/bin/sh
# bench/pipeline_changed.sh BIN — bench/pipeline_overhead.sh after a source
# change before every run (BENCH_CHANGE=1), as in CI: new images each time,
# so nothing about them can be known in advance; also the containers each
# stagepipe run creates.  FIGURE pipeline_changed_vs_raw_api.
BENCH_CHANGE=1 exec "$(dirname "$0")/pipeline_overhead.sh" "$@"
