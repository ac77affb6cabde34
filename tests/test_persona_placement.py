"""The persona is never silently dropped: a chat template without a system role (one that raises
on it, Gemma style, or one that renders without it) gets the persona as the first paragraph of
the user turn, detected by rendering a sentinel. Real tokenizer, templates given here, no
weights."""

from __future__ import annotations

import pytest

from prefixopt.benchmarks import load_split
from prefixopt.ask.prompts import build_grid, persona_placement

RAISES = (  # Gemma's way: a system message is an error
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
DROPS = (  # renders only user and assistant turns: a system message vanishes without a word
    "{% for m in messages %}{% if m['role'] != 'system' %}"
    "<|{{ m['role'] }}|>{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")


class TemplateEngine:
    """The render half of an engine: the embedded model's real tokenizer with a given chat
    template (what VllmEngine.render_chat does, without loading weights)."""

    def __init__(self, template: str | None):
        from transformers import AutoTokenizer

        from prefixopt.models import resolve_model

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
        if template is not None:
            self.tokenizer.chat_template = template

    def render_chat(self, system, user):
        messages = ([{"role": "system", "content": system}] if system is not None else [])
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)


@pytest.fixture(scope="module")
def questions(bench_dir):
    return load_split("arc_easy", "test[:3]", data_dir=bench_dir)


@pytest.mark.parametrize("template", [RAISES, DROPS], ids=["raises", "drops"])
def test_no_system_role_puts_the_persona_in_the_user_turn(template, questions):
    engine = TemplateEngine(template)
    assert persona_placement(engine) == "user"
    reqs = build_grid(engine, [(1, "You are Marie Curie."), (-1, None)], questions,
                      scoring="letter")
    # persona first, then the question, in one turn
    for r, q in zip(reqs[:3], questions[:3], strict=True):
        assert "You are Marie Curie.\n\n" + q.text[:20] in r.prompt
        assert r.prompt.count("You are Marie Curie.") == 1
    assert all("Marie Curie" not in r.prompt for r in reqs[3:])  # no prefix stays empty
    if template is DROPS:  # what a plain render would have lost
        assert "Marie Curie" not in engine.render_chat("You are Marie Curie.", "q")


def test_a_template_with_a_system_role_keeps_it(questions):
    engine = TemplateEngine(None)  # SmolLM2's own template
    assert persona_placement(engine) == "system"
    (req,) = build_grid(engine, [(1, "You are Marie Curie.")], questions[:1], scoring="cloze")
    assert req.prompt == engine.render_chat("You are Marie Curie.", questions[0].text)
    assert req.prompt.index("Marie Curie") < req.prompt.index(questions[0].text[:20])
