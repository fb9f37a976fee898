"""Which physical GPU a runner's CUDA device 0 is, for run_meta.json.

Shared by the GPU runners (stages/real_bench, stages/profile); each puts this
folder on sys.path. Nothing here imports torch: the runner passes what torch
says, so the unit tests run with a bare python3."""


SMI_QUERY = ["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"]


def _norm_uuid(u):
    u = (u or "").strip().lower()
    return u[4:] if u.startswith("gpu-") else u


def device_identity(environ, torch_name, torch_uuid, smi_csv):
    """Which physical GPU this process's CUDA device 0 is, for run_meta.json.

    environ holds CUDA_VISIBLE_DEVICES (and CUDA_DEVICE_ORDER) as gsim set
    them for the stage; torch_name and torch_uuid are what torch reports for
    device 0 ("" when unknown); smi_csv is the output of SMI_QUERY ("" when
    nvidia-smi is missing). The physical index is nvidia-smi's for that UUID;
    without a match it is gsim's assignment when that is an index in
    nvidia-smi's (PCI bus) order."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    order = environ.get("CUDA_DEVICE_ORDER")
    want = _norm_uuid(torch_uuid)
    out = {"index": None, "name": torch_name or "", "uuid": ("GPU-" + want) if want else "",
           "index_source": None, "cuda_visible_devices": visible, "cuda_device_order": order}
    for line in (smi_csv or "").splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        if want and _norm_uuid(parts[1]) == want:
            out.update(index=int(parts[0]), uuid=parts[1], index_source="nvidia-smi")
            out["name"] = out["name"] or parts[2]
            return out
    first = (visible or "").split(",")[0].strip()
    if first.isdigit() and order == "PCI_BUS_ID":
        out.update(index=int(first), index_source="CUDA_VISIBLE_DEVICES")
    return out


def smi_gpus(run=None):
    """SMI_QUERY's output, or "" when nvidia-smi cannot tell."""
    import subprocess
    try:
        r = (run or subprocess.run)(SMI_QUERY, capture_output=True, text=True, timeout=20)
        return r.stdout if r.returncode == 0 else ""
    except Exception:
        return ""
