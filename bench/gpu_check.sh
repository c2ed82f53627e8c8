#!/usr/bin/env bash
# The full check at real size on a GPU: a Llama-architecture model of about 0.9B parameters built from its
# config in bf16, trained one epoch, proposed and checked under the default policy, with each gate's time.
# On a machine without a GPU it runs the same flow on CPU with a small model (SIZE=small, or SIZE=tiny as
# the test suite does), so the script itself is tested everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
  WEIGHTGATE_DEVICE=cuda exec "$PY" bench/scale_bench.py --arch llama --size "${SIZE:-1b}" --dtype bfloat16 \
    --records "${RECORDS:-200}" --skip-demo
fi
echo "no GPU here: the same check on CPU with a ${SIZE:-small} model"
WEIGHTGATE_DEVICE=cpu exec "$PY" bench/scale_bench.py --arch llama --size "${SIZE:-small}" --dtype bfloat16 \
  --records "${RECORDS:-40}" --skip-demo
