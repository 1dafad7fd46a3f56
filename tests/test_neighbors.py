"""Periodic neighbour lists against an explicit image loop; refusal of too-long cutoffs; the Verlet skin."""

import numpy as np
import pytest
import torch

from balancebench.tasks.cg_benzene.neighbors import CutoffTooLargeError, VerletList, brute_force_pairs, neighbor_list


def random_frame(n, box, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 1.5, size=(n, 3)) * box  # deliberately not wrapped


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("box", [np.array([20.0, 20.0, 20.0]), np.array([21.0, 23.5, 26.0])])
def test_matches_brute_force_minimum_image(seed, box):
    x = random_frame(60, box, seed)
    nl = neighbor_list(torch.tensor(x), box, cutoff=9.5, block=17)
    got = set(zip(nl.i.tolist(), nl.j.tolist()))
    assert got == brute_force_pairs(x, box, 9.5)
    r = nl.vectors(torch.tensor(x)).norm(dim=-1).numpy()
    assert r.max() < 9.5
    # each shift is a whole number of box edges
    k = nl.shift.numpy() / box
    assert np.allclose(k, np.round(k))


def test_no_neighbour_is_dropped_in_a_dense_cluster():
    """100 particles within 3 A of each other: every one of the 4950 pairs is kept (no max_num_neighbors cap)."""
    rng = np.random.default_rng(3)
    x = 10.0 + rng.uniform(0, 1.5, size=(100, 3))
    nl = neighbor_list(torch.tensor(x), np.array([30.0] * 3), cutoff=5.0)
    assert len(nl) == 100 * 99 // 2


@pytest.mark.parametrize("cutoff", [10.0, 12.0])
def test_cutoff_at_or_beyond_half_box_is_refused(cutoff):
    with pytest.raises(CutoffTooLargeError, match="half the smallest box edge"):
        neighbor_list(torch.zeros(4, 3), np.array([20.0, 30.0, 30.0]), cutoff)


def test_verlet_list_rebuilds_only_after_half_skin():
    box = np.array([25.0] * 3)
    x = torch.tensor(random_frame(50, box, 4))
    vl = VerletList(cutoff=8.0, skin=1.0)
    first = vl.get(x, box)
    x2 = x.clone()
    x2[0, 0] += 0.4
    assert vl.get(x2, box) is first and vl.builds == 1
    x2[0, 0] += 0.2  # 0.6 > skin / 2
    vl.get(x2, box)
    assert vl.builds == 2
    # the skin list contains every pair of the exact list
    exact = neighbor_list(x2, box, 8.0)
    skin = vl.get(x2, box)
    assert set(zip(exact.i.tolist(), exact.j.tolist())) <= set(zip(skin.i.tolist(), skin.j.tolist()))
