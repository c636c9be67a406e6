import pytest

from pars.data.splits import PromptSplit
from pars.jobs import TrainJob, extra_training_labels


def test_extra_prompts_come_from_the_named_sources_train_part_and_never_a_main_bundle_prompt():
    split = PromptSplit()
    labels = extra_training_labels(TrainJob(extra_prompts=10**6, extra_sources=("flask", "xstest")), split, [])
    assert labels is not None and set(labels.label_names) == {"consensus:flask", "consensus:xstest"}
    assert {split.part_of(p) for p in labels.prompts} == {"train"}
    reformatted = labels.prompts[0].replace("\n", "\n\nInput: ").upper()  # a main-bundle copy in another layout
    fewer = extra_training_labels(TrainJob(extra_prompts=10**6, extra_sources=("flask", "xstest")), split, [reformatted])
    assert len(fewer.prompts) == len(labels.prompts) - 1 and labels.prompts[0] not in fewer.prompts


def test_an_unknown_extra_source_is_refused_with_the_sources_there_are():
    with pytest.raises(ValueError, match=r"no extra source nope .*flask"):
        extra_training_labels(TrainJob(extra_prompts=5, extra_sources=("nope",)), PromptSplit(), [])
