import re,sys,collections
for f in sys.argv[1:]:
    c=collections.Counter(); m=collections.defaultdict(float)
    for line in open(f):
        if 'route="GET /v1/subjects/{id}"' not in line: continue
        t=re.search(r'time=(\S+?)\.\d+Z',line).group(1); d=float(re.search(r'duration_ms=([\d.]+)',line).group(1))
        c[t]+=1; m[t]=max(m[t],d)
    print(f, ' '.join('%d/%.0f'%(c[k],m[k]) for k in sorted(c)))
