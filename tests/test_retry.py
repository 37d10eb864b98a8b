"""coop/retry.py: the memory each attempt of a cluster job asks, against the rule its docstring writes out
(attempt 1: ceil(full x mem_scale); attempt n >= 2: max(first x n, full x (n - 1)); at most the cap)."""
import pytest

from coop.retry import first_mem_mb, retry_mem_mb


def test_without_a_scale_it_is_the_old_rule_memory_times_attempt():
    assert [retry_mem_mb(first_mem_mb(8000), n, 8000) for n in (1, 2, 3)] == [8000, 16000, 24000]
    assert first_mem_mb(8000, 1.0) == 8000


def test_a_small_first_attempt_retries_with_the_whole_modelled_memory():
    first = first_mem_mb(8000, 0.005)
    assert first == 40
    # not 80 and 120 (40 x attempt): two retries would never reach what the job needs
    assert [retry_mem_mb(first, n, 8000) for n in (1, 2, 3)] == [40, 8000, 16000]


def test_a_large_scale_grows_from_the_first_attempt():
    first = first_mem_mb(1000, 1.5)
    assert [retry_mem_mb(first, n, 1000) for n in (1, 2, 3)] == [1500, 3000, 4500]


def test_rounding_up_and_the_cap():
    assert first_mem_mb(1000, 0.0001) == 1  # ceil(0.1): never 0 MB
    assert first_mem_mb(333, 0.5) == 167  # ceil(166.5)
    assert [retry_mem_mb(40, n, 8000, cap_mb=12000) for n in (1, 2, 3)] == [40, 8000, 12000]
    assert retry_mem_mb(40, 1, 8000, cap_mb=20) == 20


@pytest.mark.badinput
@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf"), "1"])
def test_bad_scale_says_what_to_set(scale):
    with pytest.raises(ValueError, match=r"cluster.mem_scale must be a number > 0.*mem_scale: 1.0"):
        first_mem_mb(8000, scale)


def test_attempts_count_from_one():
    with pytest.raises(ValueError, match="attempt counts from 1"):
        retry_mem_mb(40, 0, 8000)
