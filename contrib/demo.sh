#!/bin/sh
# contrib/demo.sh BIN — the README's first command (make demo).
#
# Until `stagepipe run` lands this checks the bundled example pipeline and
# shows its plan; it will then run it end to end on a real engine.
set -eu
BIN=${1:-build/stagepipe}
cd "$(dirname "$0")/.."
echo "stagepipe demo: the example pipeline, pipelines/fastapi.yml"
"$BIN" validate -f pipelines/fastapi.yml
echo
echo "Running the pipeline (stagepipe run) is not available yet; this demo shows its plan."
