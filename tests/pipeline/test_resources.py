import pytest

from songcorpus.pipeline.resources import ResourcePlanError, fit_resources
from songcorpus.schemas.base import Resources


def test_four_one_cpu_stages_are_scaled_to_fit_two_cpus():
    plans = fit_resources({s: Resources(num_cpus=1) for s in "abcd"}, cpus=2, gpus=0)
    assert sum(p.num_cpus * p.min_workers for p in plans) <= 2 - 0.25 + 1e-9
    assert all(p.num_cpus > 0 and "scaled" in p.note for p in plans)


def test_plan_that_fits_is_unchanged():
    (plan,) = fit_resources({"a": Resources(num_cpus=1, max_workers=8)}, cpus=16, gpus=0)
    assert plan.num_cpus == 1 and plan.note == "" and plan.max_workers == 8


def test_max_workers_capped_by_cluster():
    (plan,) = fit_resources({"a": Resources(num_cpus=1, max_workers=64)}, cpus=4, gpus=0)
    assert plan.max_workers == 4


def test_gpu_stage_on_cpu_cluster_is_refused_with_the_key_to_change():
    with pytest.raises(ResourcePlanError, match=r"stages\.separate\.resources\.num_gpus = 0"):
        fit_resources({"separate": Resources(num_gpus=1)}, cpus=8, gpus=0)


def test_too_many_gpu_workers_refused():
    with pytest.raises(ResourcePlanError, match="GPUs"):
        fit_resources({"a": Resources(num_gpus=1, min_workers=3)}, cpus=8, gpus=2)


def test_more_gpus_than_the_cluster_has_names_the_keys_to_change():
    with pytest.raises(ResourcePlanError, match="need 2 GPUs") as caught:
        fit_resources({"standardize": Resources(), "separate": Resources(num_gpus=2)}, cpus=8, gpus=1)
    message = str(caught.value)
    assert "(separate: 2 GPU x 1 worker(s))" in message and "the cluster has 1;" in message
    assert "stages.separate.resources.num_gpus or stages.separate.resources.min_workers" in message
    assert "standardize" not in message


def test_absurd_fan_out_refused():
    with pytest.raises(ResourcePlanError, match="min_workers"):
        fit_resources({s: Resources(num_cpus=1, min_workers=40) for s in "ab"}, cpus=2, gpus=0)
