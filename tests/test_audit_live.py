"""`pogo audit` of a live chain: a candidate of the open submission window has an update nobody may read yet
(the node serves it only once the window closes), so the audit checks it later and reports no difference;
once the window closes the update is fetched and checked like any other."""

from __future__ import annotations

from chainkit import Kit

from pogo_jax.chain.audit import audit
from pogo_jax.chain.client import LocalClient


def test_an_unpublished_update_is_not_a_difference_until_its_window_closes(tmp_path) -> None:
    k = Kit(tmp_path)
    m = k.make(0)
    k.submit(m)
    c = LocalClient(k.chain)  # serves blobs as the node does: not an update of the open submission window
    rep = audit(c.entries(), c.tables(), c.blob)
    assert rep.clean and rep.unpublished == 1, rep.differences
    k.close_submit()
    rep = audit(c.entries(), c.tables(), c.blob)
    assert rep.clean and rep.unpublished == 0 and rep.blobs_checked >= 3, rep
    k.chain.blobs.remove(bytes.fromhex(c.entries()[1].extra["update_sha256"]))  # a published update lost
    rep = audit(c.entries(), c.tables(), c.blob)
    assert any("entry 1 update" in d for d in rep.differences), rep.differences
