import pytest

from pars.data.open_models import OPEN_SOURCE
from pars.data.splits import PromptSplit
from pars import jobs
from pars.jobs import TrainJob, extra_training_labels, load_job_records, load_open_records, main_bundle_copies
from pars.predictor import Predictor


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


def test_the_bundled_training_data_holds_the_open_models_lengths_split_with_it_by_prompt_text():
    records = load_job_records(TrainJob())
    open_rows = [r for r in records if r.source == OPEN_SOURCE]
    assert len({r.model for r in open_rows}) == 13 and len({r.prompt for r in open_rows}) > 2000
    main_prompts = {r.prompt for r in records if r.source != OPEN_SOURCE}
    assert not main_bundle_copies({r.prompt for r in open_rows}, sorted(main_prompts), "check")
    without = load_job_records(TrainJob(open_lengths=False))
    assert len(without) == len(records) - len(open_rows) and OPEN_SOURCE not in {r.source for r in without}
    assert load_open_records(sorted(main_prompts)) == open_rows
    assert OPEN_SOURCE in {r.source for r in jobs.test_records(Predictor.untrained())}
