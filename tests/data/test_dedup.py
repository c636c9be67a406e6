from pars.data.dedup import NearDuplicateIndex

INSTRUCTION = "You are given two questions. Check if they are duplicates."
BODY = ("Question1: I am trying to understand the first law of thermodynamics and how it applies here.\n"
        "Question2: What is the first law of thermodynamics and how does it apply to engines?")


def test_a_copy_in_another_layout_is_a_near_duplicate():
    index = NearDuplicateIndex([f"{INSTRUCTION}\n\n{BODY}", "Write a haiku about autumn."])
    assert f"{INSTRUCTION}\nInput: {BODY}" in index
    assert "write a haiku about autumn" in index


def test_prompts_sharing_only_a_common_phrase_or_nothing_are_not():
    index = NearDuplicateIndex([f"{INSTRUCTION}\n\n{BODY}", "Write a haiku about autumn."])
    assert "Check if they are duplicates: a list of ten product names from two different online shops." not in index
    assert "Write a haiku about spring." not in index
    assert "Summarise the plot of Hamlet in three sentences for a ten-year-old reader." not in index
    assert "anything" not in NearDuplicateIndex([])
