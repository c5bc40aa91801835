#!/usr/bin/env python3
"""Writes the AFL dictionary (docs/fuzzing.md): every record type of src/Ckpt.Image/Records/RecordType.cs
as a little-endian u32, and the image magic, so mutations can splice in whole record headers."""
import re, struct, sys
source = open(sys.argv[1]).read()
types = sorted({int(n) for n in re.findall(r'=\s*(\d+)\s*,', source)})
with open(sys.argv[2], 'w') as out:
    for t in types:
        out.write('type_%d="%s"\n' % (t, ''.join('\\x%02x' % b for b in struct.pack('<I', t))))
    out.write('magic="CKPTPS01"\n')
