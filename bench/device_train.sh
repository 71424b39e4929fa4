#!/usr/bin/env bash
# Train the bundled model on one GPU machine that has no network, in one command:
#   1. rebuild the text encoder from the packed slim copy (bench/device_pack.py pack --out .devcarry, done here);
#   2. build a fresh feature cache with PROCS processes at once (scenes rendered on the CPU cores, tokenizer and
#      text encoder on the GPU), seeds 1..PROCS so no two processes draw the same items;
#   3. continue the bundled weights (--init) for MINUTES (less if the cache took long: the whole script stays
#      inside BUDGET_S seconds) with bf16 matmuls, the cosine ending with the time;
#   4. copy the exported fp16 model folder and the logs to $OUT.
# The same commands run on a CPU with DEVICE=cpu and small sizes (how this script was checked before a GPU run):
#   OUT=/tmp/o DEVICE=cpu PROCS=2 PER=4 LARGE=4 MINUTES=0.3 BATCH=8 bash bench/device_train.sh
set -euo pipefail
: "${OUT:?set OUT to the folder that receives the model}"
DEVICE=${DEVICE:-cuda} PROCS=${PROCS:-14} PER=${PER:-1000} LARGE=${LARGE:-2000}
MINUTES=${MINUTES:-5} BATCH=${BATCH:-1024} LR=${LR:-8e-4} INIT=${INIT:-assets/infinity-small}
WORK=${WORK:-/tmp/devtrain} BUDGET_S=${BUDGET_S:-570}  # the device call's limit is 600 s
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export INFINITY_EMOJI_DIR=${INFINITY_EMOJI_DIR:-$PWD/.devcarry/emoji/emoji-datasource-google}
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/device.log"; }

log "start on $DEVICE; $( (nvidia-smi -L 2>/dev/null || echo no nvidia-smi) | head -1); torch $($PY -c 'import torch; print(torch.__version__)')"
$PY bench/device_pack.py unpack --src .devcarry --out "$WORK/minilm" --check 20000 2>&1 | tail -1 | tee -a "$OUT/device.log"

log "cache: $PROCS processes × ($PER per ratio at 64 px, $LARGE at 128 px)"
pids=()
for k in $(seq 1 "$PROCS"); do
  OMP_NUM_THREADS=1 $PY -m infinity train cache --preset small-v2 --tokenizer assets/infinity-small \
    --out "$WORK/cache" --per-bucket "$PER" --large-per-bucket "$LARGE" --seed "$k" \
    --text-encoder "$WORK/minilm" --device "$DEVICE" > "$WORK/cache_$k.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || { log "a cache process failed:"; tail -20 "$WORK"/cache_*.log | tee -a "$OUT/device.log"; exit 1; }
done
log "cache: $(ls "$WORK/cache" | grep -c safetensors) chunks, $(du -sh "$WORK/cache" | cut -f1)"

# whatever the cache took, leave the export and the copy time inside the call's limit
MINUTES=$($PY -c "print(round(max(0.5, min($MINUTES, ($BUDGET_S - $SECONDS - 45) / 60)), 2))")
log "train: $MINUTES min, batch $BATCH (a quarter at 128 px), peak LR $LR, from $INIT"
$PY -m infinity train transformer --preset small-v2 --tokenizer assets/infinity-small --cache "$WORK/cache" \
  --out "$WORK/run" --init "$INIT" --lr "$LR" --batch "$BATCH" --budget-weights 0.016M=0.8,0.004M=0.2 \
  --minutes "$MINUTES" --steps 1000000 --snapshot-every 0 --sample-every 0 --device "$DEVICE" \
  > "$WORK/train_stdout.log" 2>&1 || { log "training failed:"; tail -30 "$WORK/train_stdout.log" | tee -a "$OUT/device.log"; exit 1; }
tr '\r' '\n' < "$WORK/train_stdout.log" | grep "^transformer" | tail -1 | tee -a "$OUT/device.log"
tail -60 "$WORK/run/train.log" > "$OUT/train.log"
cp "$WORK/run/model/"* "$OUT/"
log "done: $(ls "$OUT" | tr '\n' ' ')"
