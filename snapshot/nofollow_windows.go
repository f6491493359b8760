package snapshot

// oNoFollow is 0: Windows has no O_NOFOLLOW. A symlink put in a restored
// file's place during the restore would be followed; making one needs a
// privilege (or developer mode) there.
const oNoFollow = 0
