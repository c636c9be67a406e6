"""The simulated balancers: replica choice and predicted work (pure logic)."""

import pytest

from pars.sim.balancing import Balancer, Replica, predicted_tokens


def test_predicted_work_grows_with_the_rank():
    assert predicted_tokens(0.0) == 16 and predicted_tokens(1.0) == 4096
    assert predicted_tokens(0.2) < predicted_tokens(0.7)


def test_balancers_choose_by_their_policy():
    a, b = Replica("a", work=100.0, in_flight=1), Replica("b", work=10.0, in_flight=3)
    assert Balancer([a, b], "least-work").choose() is b
    assert Balancer([a, b], "least-requests").choose() is a
    turns = Balancer([a, b], "round-robin")
    assert [turns.choose().name for _ in range(3)] == ["a", "b", "a"]


def test_power_of_two_takes_the_less_busy_of_two_random_replicas_and_replays_with_its_seed():
    replicas = [Replica(f"r{i}", in_flight=i) for i in range(8)]

    def picks(seed: int) -> list[str]:
        balancer = Balancer(replicas, "power-of-two", seed=seed)
        return [balancer.choose().name for _ in range(200)]

    names = picks(1)
    assert "r7" not in names, "the busiest replica can never be the less busy of two"
    assert len(set(names)) >= 4, "two random draws should spread over many replicas"
    assert picks(1) == names and picks(2) != names
    assert Balancer([Replica("only")], "power-of-two").choose().name == "only"


def test_a_bad_balancer_or_no_replica_is_rejected():
    with pytest.raises(ValueError, match="unknown balancer"):
        Balancer([Replica("a")], "random")
    with pytest.raises(ValueError, match="at least one"):
        Balancer([], "least-work")


def test_a_replica_counts_what_it_was_sent_until_each_request_ends():
    replica = Replica("a")
    replica.dispatch(100.0)
    replica.dispatch(16.0)
    assert (replica.in_flight, replica.work, replica.sent) == (2, 116.0, 2)
    replica.release(100.0)
    replica.release(16.0)
    assert (replica.in_flight, replica.work, replica.sent) == (0, 0.0, 2)
