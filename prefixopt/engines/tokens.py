"""The model's own tokenizer on the client side, shared by the in-process vLLM engine and the
OpenAI-compatible engine in front of a vLLM server: the same chat rendering, the same token
ids (BOS handling as lm-evaluation-harness's HF backend) and the same answer-letter tokens,
so a prompt sent to a server is byte-identical to the one scored in-process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from prefixopt.engines import probe_persona_placement
from prefixopt.errors import PrefixoptError


class TokenizerSide:
    """Rendering and tokenisation from `self.tokenizer` (a Hugging Face tokenizer)."""

    tokenizer: Any

    def _init_tokens(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._letter_ids: dict[tuple[tuple[str, ...], bool], list[int]] = {}
        bos = getattr(tokenizer, "bos_token", None)
        self._bos = bos if isinstance(bos, str) and bos else None

    def render_chat(self, system: str | None, user: str) -> str:
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    @cached_property
    def persona_placement(self) -> str:
        """"system" or "user" (no system role in this template), probed once per engine
        (engines.probe_persona_placement)."""
        return probe_persona_placement(self.render_chat)

    def template_without_system(self) -> str:
        """What the chat template puts in on its own when no system message is sent."""
        return self.render_chat(None, "\x00").split("\x00")[0]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text; special tokens added unless the text already starts with BOS
        (a chat-rendered prompt carries its own)."""
        with_bos = [i for i, t in enumerate(texts) if not (self._bos and t.startswith(self._bos))]
        out: list[list[int]] = [[] for _ in texts]
        groups = ((with_bos, True), (sorted(set(range(len(texts))) - set(with_bos)), False))
        for idx, special in groups:
            if idx:
                ids = self.tokenizer([texts[i] for i in idx], add_special_tokens=special)
                for i, row in zip(idx, ids["input_ids"], strict=True):
                    out[i] = list(row)
        return out

    def letter_token_ids(self, letters: Sequence[str], after_space: bool) -> list[int]:
        """The single token the model emits for each letter: "A" after whitespace/newline (chat
        templates end in "\\n"), " A" after "Answer:" (harness)."""
        key = (tuple(letters), after_space)
        if key not in self._letter_ids:
            ids = []
            for letter in letters:
                toks = self.tokenizer.encode(letter if after_space else " " + letter,
                                             add_special_tokens=False)
                if len(toks) != 1:
                    raise PrefixoptError(
                        f"answer letter {letter!r} is {len(toks)} tokens for this tokenizer; "
                        "use --scoring cloze or generate"
                    )
                ids.append(toks[0])
            self._letter_ids[key] = ids
        return self._letter_ids[key]
