import struct, sqlite3, collections, sys
wal = open(sys.argv[1],'rb').read()
magic, ver, psz, ckseq, s1, s2, c1, c2 = struct.unpack('>8I', wal[:32])
db = sqlite3.connect('file:data/custos.db?mode=ro', uri=True)
owner = {}
for name, pageno in db.execute("SELECT name, pageno FROM dbstat"):
    owner[pageno] = name
off = 32; commits = []; cur = []
while off + 24 + psz <= len(wal):
    pg, dbsz, fs1, fs2 = struct.unpack('>4I', wal[off:off+16])
    if (fs1, fs2) != (s1, s2): break
    cur.append(pg)
    if dbsz: commits.append(cur); cur = []
    off += 24 + psz
print("page size", psz, "commits", len(commits), "frames", sum(map(len, commits)))
# skip the first and last few commits
tot = collections.Counter(); n = 0
for c in commits[5:-5]:
    n += 1
    for pg in c: tot[owner.get(pg, 'new/unknown')] += 1
print("commits analysed", n, "frames a commit", round(sum(tot.values())/n, 1))
for k, v in tot.most_common(): print(f"  {k:40s} {v/n:6.2f} a commit")
