package state

// ForgetGroupPlace deletes offerID's place in (feed, key) of group
// partition g when it is not live (as a sweep of removed places would):
// tests use it to make the changelog carry place deletions. It reports
// whether it deleted one.
func (b *Batch) ForgetGroupPlace(g int32, feed, key, offerID string) (bool, error) {
	pl, found, err := b.GroupPlace(g, feed, key, offerID)
	if err != nil || !found || pl.Live {
		return false, err
	}
	return true, b.b.Delete(append(groupPrefix(nil, prefixPlace, g, feed, key), offerID...), nil)
}

// ForgetGroupWinner deletes the decided winner of (feed, key) of group
// partition g when the group has no candidate left. It reports whether it
// deleted one.
func (b *Batch) ForgetGroupWinner(g int32, feed, key string) (bool, error) {
	w, err := b.GroupWinner(g, feed, key)
	if err != nil || w.OfferID != "" {
		return false, err
	}
	k := groupPrefix(nil, prefixWinner, g, feed, key)
	found, err := b.get(k, func([]byte) error { return nil })
	if err != nil || !found {
		return false, err
	}
	return true, b.b.Delete(k, nil)
}
