#!/bin/bash
# Records the transformers serve sweep on a GPU machine, as it was recorded
# on the H200: transformers serve (continuous batching) over HTTP, then the
# same workloads in-process with real-bench. Run from the repository root:
#
#   testdata/servebench/transformers-serve/recipe/record.sh PYDEPS OUT
#
# PYDEPS: the folder pydeps.sh made (put on PYTHONPATH for the server only).
# OUT: where logs and a copy of the run folders go. The gsim store is tmp/
# under the repository root, as for any gsim run.
# Needs: python3 with CUDA torch and transformers 5.17 (its `transformers`
# command), curl, a gsim binary ($GSIM, default bin/gsim) and, to record a
# stream for the client's tests, the test binary of pkg/servebench
# ($SERVEBENCH_TEST, made with `go test -c -o bin/servebench.test
# ./pkg/servebench`; skipped when absent). Every step has a timeout.
set -u
PYDEPS=$(cd "$1" && pwd)
OUT=$2
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
HERE=testdata/servebench/transformers-serve
GSIM=${GSIM:-bin/gsim}
SERVEBENCH_TEST=${SERVEBENCH_TEST:-bin/servebench.test}
MODEL=${MODEL:-/tmp/qwen3-rand}
PORT=${PORT:-8000}
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$OUT/steps.log"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null; }
SPID=
stop_server() {
  [ -z "$SPID" ] && return
  kill "$SPID" 2>/dev/null
  for _ in $(seq 1 20); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=
}
trap stop_server EXIT

# The machine and the versions.
{
  date -u
  nvidia-smi
  python3 -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
  PYTHONPATH=$PYDEPS python3 -c "import pydantic, fastapi, starlette, uvicorn, openai; print('pydantic', pydantic.VERSION, 'fastapi', fastapi.__version__, 'starlette', starlette.__version__, 'uvicorn', uvicorn.__version__, 'openai', openai.__version__)"
} > "$OUT/env.txt" 2>&1
el "env recorded"

# The model folder: random bf16 weights of the Qwen3-0.6B card, a word-level
# tokenizer (one token a common word), EOS disabled.
TOK=$(mktemp -d)
python3 $HERE/recipe/make_tokenizer.py $HERE/recipe/words.txt "$TOK"
timeout 150 python3 $HERE/recipe/make_model.py stages/models/Qwen3-0.6B "$TOK" "$MODEL" > "$OUT/make_model.log" 2>&1
el "model saved rc=$?"

# The server, with real-bench's engine settings where it has flags: KV blocks
# of 256 tokens, 1024 of them, 8192 tokens a step, CUDA graphs, sdpa (made
# paged by continuous batching). Block sharing cannot be turned off here.
mkdir -p /tmp/hf/hub
export HF_HUB_OFFLINE=1 HF_HOME=/tmp/hf
PYTHONPATH=$PYDEPS transformers serve "$MODEL" --host 127.0.0.1 --port "$PORT" \
  --continuous-batching --attn-implementation sdpa --cb-block-size 256 --cb-num-blocks 1024 \
  --cb-max-batch-tokens 8192 --cb-use-cuda-graph > "$OUT/serve.log" 2>&1 &
SPID=$!
up=0
for _ in $(seq 1 240); do
  curl -sf --max-time 2 "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 && { up=1; break; }
  kill -0 "$SPID" 2>/dev/null || break
  sleep 0.5
done
el "server up=$up"
[ $up = 1 ] || exit 1
export GSIM_SERVE_URL=http://127.0.0.1:$PORT GSIM_SERVE_MODEL=$MODEL
C0=$(cpu_ticks $SPID)
timeout 100 "$GSIM" run $HERE/warmup.yaml > "$OUT/gsim-warmup.log" 2>&1
el "warm-up rc=$? server cpu ticks $(($(cpu_ticks $SPID) - C0))"
C0=$(cpu_ticks $SPID)
timeout 300 "$GSIM" run $HERE/sweep.yaml --only serve > "$OUT/gsim-serve.log" 2>&1
el "serve sweep rc=$? server cpu ticks $(($(cpu_ticks $SPID) - C0)) (CLK_TCK $(getconf CLK_TCK))"
if [ -x "$SERVEBENCH_TEST" ]; then
  python3 - > "$OUT/record-body.json" <<PY
import json
words = open("$HERE/recipe/words.txt").read().split()[:40]
print(json.dumps({"model": "$MODEL", "prompt": " ".join(words), "max_tokens": 8, "stream": True,
                  "temperature": 0, "stream_options": {"include_usage": True}}))
PY
  GSIM_SERVEBENCH_RECORD=http://127.0.0.1:$PORT/v1/completions GSIM_SERVEBENCH_RECORD_BODY=$OUT/record-body.json \
    GSIM_SERVEBENCH_RECORD_OUT=$OUT/transformers-serve-completions.sse \
    timeout 30 "$SERVEBENCH_TEST" -test.run '^TestRecordStream$' -test.count=1 > "$OUT/record.log" 2>&1
  el "stream recorded rc=$?"
fi
stop_server

# The same workloads in-process, on the GPU the server has just released.
timeout 600 "$GSIM" run $HERE/sweep.yaml --only real > "$OUT/gsim-real.log" 2>&1
el "real sweep rc=$?"
cp -rL tmp/runs/transformers-serve-h200 "$OUT/runs"
