"""The router's pure logic: priorities from the rank among recent scores, predicted work, replica choice."""

import pytest

from pars.route.balancing import Balancer, RankWindow, Replica, predicted_tokens, priority_of_share


def test_priority_is_the_rank_among_recent_scores_and_old_scores_leave_the_window():
    window = RankWindow(size=4)
    assert window.share_below(1.0) == 0.5  # nothing seen yet: the middle
    for score in (1.0, 2.0, 3.0, 4.0):
        window.observe(score)
    assert [priority_of_share(window.share_below(s)) for s in (0.0, 2.5, 9.0)] == [0, 500, 1000]
    assert window.share_below(2.0) == pytest.approx(0.375)  # one below, one tie (counted half)
    for score in (10.0, 11.0, 12.0, 13.0):  # the first four are pushed out
        window.observe(score)
    assert window.share_below(5.0) == 0.0


def test_predicted_work_grows_with_the_rank():
    assert predicted_tokens(0.0) == 16 and predicted_tokens(1.0) == 4096
    assert predicted_tokens(0.2) < predicted_tokens(0.7)


def test_balancers_choose_among_healthy_replicas():
    a, b, c = Replica("a", work=100.0, in_flight=1), Replica("b", work=10.0, in_flight=3), Replica("c", healthy=False)
    assert Balancer([a, b, c], "least-work").choose() is b
    assert Balancer([a, b, c], "least-requests").choose() is a
    turns = Balancer([a, b, c], "round-robin")
    assert [turns.choose().url for _ in range(4)] == ["a", "b", "a", "b"]
    assert Balancer([a, b, c]).choose(exclude={"b"}) is a
    assert Balancer([c]).choose() is None


def test_power_of_two_takes_the_less_busy_of_two_random_replicas_and_replays_with_its_seed():
    replicas = [Replica(f"r{i}", in_flight=i) for i in range(8)]

    def picks(seed: int) -> list[str]:
        balancer = Balancer(replicas, "power-of-two", seed=seed)
        return [balancer.choose().url for _ in range(200)]

    urls = picks(1)
    assert "r7" not in urls, "the busiest replica can never be the less busy of two"
    assert len(set(urls)) >= 4, "two random draws should spread over many replicas"
    assert picks(1) == urls and picks(2) != urls
    lone = [Replica("only"), Replica("down", healthy=False)]
    assert Balancer(lone, "power-of-two").choose().url == "only"


def test_a_bad_balancer_or_no_upstream_is_rejected():
    with pytest.raises(ValueError, match="unknown balancer"):
        Balancer([Replica("a")], "random")
    with pytest.raises(ValueError, match="at least one"):
        Balancer([], "least-work")


def test_an_anchored_rank_reads_the_checkpoints_quantiles_from_the_first_request():
    from pars.route.balancing import AnchoredRank

    rank = AnchoredRank([0.0, 1.0, 2.0, 4.0, 8.0])  # 0 %, 25 %, 50 %, 75 %, 100 %
    assert [rank.share_below(s) for s in (-5.0, 0.0, 0.5, 2.0, 3.0, 8.0, 99.0)] == [0.0, 0.0, 0.125, 0.5, 0.625, 1.0, 1.0]
    rank.observe(100.0)  # traffic does not move the anchor
    assert rank.share_below(2.0) == 0.5
    assert AnchoredRank([1.0, 1.0, 1.0]).share_below(1.0) == 0.5  # all tied: the middle
    with pytest.raises(ValueError, match="non-decreasing"):
        AnchoredRank([2.0, 1.0])


def test_a_replica_counts_what_it_was_sent_until_each_request_ends():
    from pars.route.balancing import Replica

    replica = Replica("http://a")
    replica.dispatch(100.0)
    replica.dispatch(16.0)
    assert (replica.in_flight, replica.work, replica.sent) == (2, 116.0, 2)
    replica.release(100.0)
    replica.release(16.0)
    assert (replica.in_flight, replica.work, replica.sent) == (0, 0.0, 2)
