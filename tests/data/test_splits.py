from pars.data import LengthRecord, PromptSplit, normalise_prompt


def test_normalise_prompt_folds_case_punctuation_and_space():
    assert normalise_prompt("  Hello,   World!\n") == normalise_prompt("hello world")


def test_splits_are_disjoint_by_prompt_text_and_stable_under_a_seed(gpt4_records):
    # the same prompt under another id, model and punctuation must land in the same part
    copies = [LengthRecord(r.prompt.upper() + "!", 1, "other", "copy", "x" + r.prompt_id) for r in gpt4_records]
    records = gpt4_records + copies
    parts = PromptSplit(seed=7).partition(records)
    texts = {name: {normalise_prompt(r.prompt) for r in rows} for name, rows in parts.items()}
    assert not texts["train"] & texts["test"]
    assert not texts["train"] & texts["val"]
    assert not texts["val"] & texts["test"]
    assert sum(len(rows) for rows in parts.values()) == len(records)
    assert 0.1 < len(texts["test"]) / len({normalise_prompt(r.prompt) for r in records}) < 0.3
    again = PromptSplit(seed=7).partition(list(reversed(records)))
    assert {n: {r.prompt_id for r in rows} for n, rows in again.items()} == {
        n: {r.prompt_id for r in rows} for n, rows in parts.items()}
    other = PromptSplit(seed=8).partition(records)
    assert {r.prompt_id for r in other["test"]} != {r.prompt_id for r in parts["test"]}
