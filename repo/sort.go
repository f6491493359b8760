package repo

import "slices"

// sortByOffset sorts items by the offset key returns.
func sortByOffset[T any](items []T, key func(T) uint32) {
	slices.SortFunc(items, func(a, b T) int { return int(int64(key(a)) - int64(key(b))) })
}
