"""The perturbation-only null of the oracle ceiling: neutral paraphrases of a plain system
prompt that name no person. The ceiling of no prefix + k prefixes grows with k even when the
prefixes do nothing but perturb the model; k of these texts (k = the learned people evaluated)
show how much of a persona oracle ceiling any k harmless rewordings give. Fixed here, before
any held-out question is seen, so nothing about them is chosen on the data they are scored on.
"""

from __future__ import annotations

# Each says only "you assist"; none names a person, a role or a field of expertise. The first
# is the generic hand-written prompt itself. Order matters: the first k are used.
PARAPHRASES: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are an assistant who is glad to help.",
    "You are a helpful AI assistant.",
    "You are here to help.",
    "You are an assistant. Be helpful.",
    "You are a friendly and helpful assistant.",
    "You are an assistant whose job is to help.",
    "You are a useful assistant.",
    "You are an assistant that helps with questions.",
    "You are a supportive, helpful assistant.",
    "You are an obliging assistant.",
    "You are an assistant ready to help.",
)

def paraphrases(k: int) -> tuple[str, ...]:
    """The first k paraphrases (all of them when k exceeds how many are listed)."""
    return PARAPHRASES[: max(k, 0)]
