"""Persona rendering, the person-major grid with shared heads, few-shot hygiene, and the exact
lm-evaluation-harness prompt strings."""

from __future__ import annotations

import pytest

from prefixopt.benchmarks import get_task
from prefixopt.benchmarks.task import LETTER_INSTRUCTION
from prefixopt.errors import PrefixoptError
from prefixopt.ask.prompts import build_grid, fewshot_examples, persona
from prefixopt.records import NO_PERSON, Question


class TemplateEngine:
    """A ChatML renderer (the SmolLM2 template's shape, default system prompt included), so
    grid tests run in milliseconds without a model."""

    calls = 0

    def render_chat(self, system: str | None, user: str) -> str:
        TemplateEngine.calls += 1
        system = "You are a helpful AI assistant." if system is None else system
        return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                "<|im_start|>assistant\n")


class TrimmingEngine(TemplateEngine):
    """A template that trims content (as Llama 3's does): splicing must fall back."""

    def render_chat(self, system: str | None, user: str) -> str:
        return super().render_chat(system, user.strip())


ARC = Question("arc_easy/q1", "arc_easy", "Which gas do plants take in?",
               ("oxygen", "carbon dioxide", "helium", "neon"), ("A", "B", "C", "D"), "B")
MMLU = Question("mmlu/test/0", "mmlu", "  What is 2+2? ", ("3", "4", "5", "6"),
                ("A", "B", "C", "D"), "B", subject="high_school_mathematics")
HS = Question("hellaswag/validation/0", "hellaswag", "Roof shingle removal: A man is on a roof. He",
              ("falls.", "starts pulling up roofing."), ("A", "B"), "B",
              subject="Roof shingle removal")
GSM = Question("gsm8k/test/0", "gsm8k", "Tom has 3 apples and buys 4. How many?", gold="7",
               solution="3 + 4 = <<3+4=7>>7\n#### 7")


@pytest.mark.parametrize("name", ["{0.__class__}", 'Dwayne "The Rock" Johnson', "Line\nBreak",
                                  "{name}", "%s {} {{x}}"])
def test_persona_is_literal(name: str) -> None:
    assert persona("You are {name}.", name) == f"You are {name}."


def test_persona_template_needs_placeholder() -> None:
    with pytest.raises(PrefixoptError):
        persona("You are a genius.", "Ada Lovelace")


def test_grid_is_person_major_with_shared_heads() -> None:
    qs = [ARC, Question("arc_easy/q2", "arc_easy", "What melts ice?", ("heat", "cold"),
                        ("A", "B"), "A")]
    heads = [(7, "You are Ada Lovelace."), (NO_PERSON, None), (9, "You are {Kant}.")]
    reqs = build_grid(TemplateEngine(), heads, qs, scoring="cloze")
    assert [(r.person_id, r.question.question_id) for r in reqs] == [
        (p, q.question_id) for p, _ in heads for q in qs
    ]
    for k, (_, system) in enumerate(heads):
        block = reqs[2 * k : 2 * k + 2]
        want = TemplateEngine().render_chat(system, block[0].question.text)
        assert block[0].prompt == want  # splicing gives exactly the template's output
        head = want.split("<|im_start|>user")[0]
        assert all(r.prompt.startswith(head) for r in block)
    assert reqs[0].continuations == ("oxygen", "carbon dioxide", "helium", "neon")


def test_grid_renders_few_templates_and_falls_back_when_trimmed() -> None:
    TemplateEngine.calls = 0
    qs = [ARC] * 1 + [MMLU]
    heads = [(i, f"You are person {i}.") for i in range(16)]
    build_grid(TemplateEngine(), heads, qs, scoring="letter")
    assert TemplateEngine.calls <= len(heads) + len(qs)  # not K * B
    trimmed = build_grid(TrimmingEngine(), heads[:2], [MMLU], scoring="cloze")
    assert trimmed[0].prompt == TrimmingEngine().render_chat("You are person 0.", MMLU.text)


def test_letter_chat_prompt_and_fewshot_block() -> None:
    shot = Question("arc_easy/s1", "arc_easy", "What is ice?", ("solid water", "gas"),
                    ("A", "B"), "A")
    (req,) = build_grid(TemplateEngine(), [(NO_PERSON, None)], [ARC], scoring="letter",
                        fewshot=[shot])
    user = req.prompt.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    assert user == ("What is ice?\n\nA. solid water\nB. gas\n\n" + LETTER_INSTRUCTION
                    + "\nAnswer: A\n\nWhich gas do plants take in?\n\nA. oxygen\n"
                    "B. carbon dioxide\nC. helium\nD. neon\n\n" + LETTER_INSTRUCTION)
    assert req.letters == ("A", "B", "C", "D") and req.continuations == ()


def test_harness_strings_exact() -> None:
    arc, mmlu, hs, gsm = (get_task(q.benchmark) for q in (ARC, MMLU, HS, GSM))
    assert arc.render_harness(ARC, "cloze") == "Question: Which gas do plants take in?\nAnswer:"
    assert arc.continuations(ARC, "harness")[1] == " carbon dioxide"
    assert mmlu.render_harness(MMLU, "letter") == (
        "The following are multiple choice questions (with answers) about high school "
        "mathematics.\n\nWhat is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )
    assert hs.render_harness(HS, "cloze") == HS.text
    assert hs.continuations(HS, "harness") == (" falls.", " starts pulling up roofing.")
    assert gsm.render_harness(GSM, "generate", [GSM]) == (
        "Question: Tom has 3 apples and buys 4. How many?\nAnswer: 3 + 4 = <<3+4=7>>7\n#### 7"
        "\n\nQuestion: Tom has 3 apples and buys 4. How many?\nAnswer:"
    )
    assert gsm.generate_params(GSM) == (256, ("Question:", "</s>", "<|im_end|>"))
    # five-shot mmlu: description once, then "{text} {letter}" examples
    five = mmlu.render_harness(MMLU, "letter", [MMLU] * 2)
    assert five.count("The following are") == 1 and five.count("Answer: B\n\n") == 2


def test_harness_grid_with_persona_and_bad_inputs() -> None:
    (req,) = build_grid(TemplateEngine(), [(3, "You are Ada.")], [ARC], scoring="cloze",
                        prompt_format="harness")
    assert req.prompt == "You are Ada.\n\nQuestion: Which gas do plants take in?\nAnswer:"
    with pytest.raises(PrefixoptError):
        build_grid(TemplateEngine(), [(3, None)], [ARC], scoring="cloze", prompt_format="xml")
    with pytest.raises(PrefixoptError):
        build_grid(TemplateEngine(), [(3, None)], [GSM], scoring="letter")


def test_fewshot_excludes_scored_questions_and_is_seeded(bench_dir) -> None:
    from dataclasses import replace

    from prefixopt.benchmarks import load_split

    pool = load_split("hellaswag", get_task("hellaswag").fewshot_split, data_dir=bench_dir)
    scored = {q.question_id for q in pool[: len(pool) - 6]}  # leave exactly 6 candidates
    shots = fewshot_examples("hellaswag", 5, 0, bench_dir, scored)
    assert len(shots) == 5 and not scored & set(shots.ids)
    assert shots == fewshot_examples("hellaswag", 5, 0, bench_dir, scored)
    # the same question under another id is left out too (its normalised text)
    twins = [replace(q, question_id=f"twin/{i}", text=f"  {q.text.upper()} ")
             for i, q in enumerate(pool[-6:])]
    with pytest.raises(PrefixoptError, match="only 0 hellaswag validation examples"):
        fewshot_examples("hellaswag", 1, 0, bench_dir, scored, exclude=twins)
    assert fewshot_examples("arc_easy", 5, 1, bench_dir) != fewshot_examples("arc_easy", 5, 2,
                                                                             bench_dir)
    with pytest.raises(PrefixoptError):
        fewshot_examples("hellaswag", 7, 0, bench_dir, scored)


def test_mmlu_fewshot_is_the_subjects_first_dev_examples(bench_dir) -> None:
    """lm-evaluation-harness's mmlu: the query's own subject, the first k dev rows (first_n)."""
    from prefixopt.benchmarks import load_split

    dev = load_split("mmlu", "dev", data_dir=bench_dir)
    shots = fewshot_examples("mmlu", 3, 0, bench_dir)
    assert shots == fewshot_examples("mmlu", 3, 7, bench_dir)  # no draw: the seed is unused
    assert len(shots.groups) == 57 and len(shots) == 57 * 3
    for subject, examples in shots.groups.items():
        assert examples == tuple(q for q in dev if q.subject == subject)[:3]
    algebra = Question("mmlu/test/abstract_algebra/0", "mmlu", "Find 1+1.", ("1", "2"),
                       ("A", "B"), "B", subject="abstract_algebra")
    history = Question("mmlu/test/world_religions/0", "mmlu", "Who?", ("X", "Y"), ("A", "B"),
                       "A", subject="world_religions")
    heads = [(1, "You are Ada."), (2, "You are Kant.")]
    reqs = build_grid(TemplateEngine(), heads, [algebra, history], scoring="letter",
                      prompt_format="harness", fewshot=shots)
    assert [(r.person_id, r.question) for r in reqs] == [
        (p, q) for p, _ in heads for q in (algebra, history)]  # person-major
    mmlu = get_task("mmlu")
    for r in reqs:
        own = shots.groups[r.question.subject]
        assert r.prompt.endswith(mmlu.render_harness(r.question, "letter", own))
        others = [s for g, ex in shots.groups.items() if g != r.question.subject for s in ex]
        assert not any(s.text.strip() in r.prompt for s in others)
    # chat: each person's head is shared by both questions; the block follows the subject
    chat = build_grid(TemplateEngine(), heads, [algebra, history], scoring="letter",
                      fewshot={"mmlu": shots})
    assert chat[0].prompt.split("<|im_start|>user")[0] == chat[1].prompt.split(
        "<|im_start|>user")[0]
    assert shots.groups["world_religions"][0].text in chat[1].prompt
    assert shots.groups["world_religions"][0].text not in chat[0].prompt
