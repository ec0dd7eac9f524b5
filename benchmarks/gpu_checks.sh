#!/usr/bin/env bash
# The GPU checks of the model issue, as one script for a lent GPU machine (python3 there holds a CUDA torch):
# conformance tests on cuda (fp32, TF32 off), then the latency benchmark on cuda fp32, cuda bf16 autocast,
# and on that machine's CPU with 2 threads. Needs the reference vectors in $CROSSFORMER_REFERENCE.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
CROSSFORMER_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider \
  tests/test_conformance.py tests/test_state_dict.py tests/test_checkpoint.py tests/test_model_any_size.py 2>&1 | tail -6
python3 - <<'PY'
import numpy as np, torch, json, os, sys
sys.path.insert(0, ".")
import crossformer
torch.backends.cudnn.allow_tf32 = False
ref = os.environ["CROSSFORMER_REFERENCE"]
for name in ("v1_tiny_224", "v2pp_tiny_256", "v2pp_lda_224"):
    meta = json.load(open(f"{ref}/vectors/{name}.json")); z = np.load(f"{ref}/vectors/{name}.npz")
    m = crossformer.from_official_config(meta["constructor_kwargs"], meta["code_version"]).eval()
    crossformer.load_official_state_dict(m, {k[3:]: z[k] for k in z.files if k.startswith("sd/")})
    m = m.cuda(); x = torch.from_numpy(z["input"]).cuda()
    with torch.inference_mode():
        fp32 = m(x).float().cpu().numpy()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = m(x).float().cpu().numpy()
    print(f"{name}: cuda fp32 max|Δlogit| vs official {np.abs(fp32 - z['logits']).max():.2e}; "
          f"bf16 autocast {np.abs(bf16 - z['logits']).max():.2e}; top-1 agree {np.mean(bf16.argmax(1) == z['logits'].argmax(1)):.2f}")
PY
python3 benchmarks/bench_model.py --device cuda --runs 20 --warmup 5
python3 benchmarks/bench_model.py --device cuda --amp bf16 --runs 20 --warmup 5
python3 benchmarks/bench_model.py --device cpu --threads 2 --runs 10 --warmup 3
