import { describe, expect, it } from 'vitest';
import { MasterKey, SEAL_OVERHEAD } from '../../src/restic/crypto.js';

const hex = (s: string) => Buffer.from(s, 'hex');

// Poly1305-AES test vectors from Bernstein's paper (cr.yp.to/mac/poly1305-20050329.pdf, appendix B),
// which restic's own crypto tests also use: a sealed object is nonce ‖ message ‖ MAC.
const poly1305Aes = [
  { msg: 'f3f6', r: '851fc40c3467ac0be05cc20404f3f700', k: 'ec074c835580741701425b623235add6', nonce: 'fb447350c4e868c52ac3275cf9d4327e', mac: 'f4c633c3044fc145f84f335cb81953de' },
  { msg: '', r: 'a0f3080000f46400d0c7e9076c834403', k: '75deaa25c09f208e1dc4ce6b5cad3fbf', nonce: '61ee09218d29b0aaed7e154a2c5509cc', mac: 'dd3fab2251f11ac759f0887129cc2ee7' },
  {
    msg: '663cea190ffb83d89593f3f476b6bc24d7e679107ea26adb8caf6652d0656136',
    r: '48443d0bb0d21109c89a100b5ce2c208',
    k: '6acb5f61a7176dd320c5c1eb2edcdc74',
    nonce: 'ae212a55399729595dea458bc621ff0e',
    mac: '0ee1c16bb73f0f4fd19881753c01cdbe',
  },
  {
    msg: 'ab0812724a7f1e342742cbed374d94d136c6b8795d45b3819830f2c04491faf0990c62e48b8018b2c3e4a0fa3134cb67fa83e158c994d961c4cb21095c1bf9',
    r: '12976a08c4426d0ce8a82407c4f48207',
    k: 'e1a5668a4d5b66a5f68cc5424ed5982d',
    nonce: '9ae831e743978d3a23527c7128149e3a',
    mac: '5154ad0d2cb26e01274fc51148491f1b',
  },
];

describe('restic crypto (AES-256-CTR + Poly1305-AES)', () => {
  it("computes Poly1305-AES as in Bernstein's test vectors", () => {
    for (const v of poly1305Aes) {
      const key = new MasterKey(Buffer.alloc(32, 1), hex(v.k), hex(v.r));
      const sealed = Buffer.concat([hex(v.nonce), hex(v.msg), hex(v.mac)]);
      expect(key.verify(sealed)).toBe(true);
      sealed[sealed.length - 1]! ^= 1;
      expect(key.verify(sealed)).toBe(false);
    }
  });

  it("opens the ciphertext restic's crypto tests encrypt under a known key", () => {
    const key = new MasterKey(
      hex('303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef'),
      hex('ef4d8824cb80b2bcc5fbff8a9b12a42c'),
      hex('cc8d4b948ee0ebfe1d415de921d10353'),
    );
    const sealed = hex('69fb41c62d12def4593bd71757138606338f621aeaeb39da0fe4f99233f8037a54ea63338a813bcf3f75d8c3cc75dddf8750');
    expect(key.open(sealed, 'vector').toString()).toBe('Dies ist ein Test!');
  });

  it('seals with a fresh IV each time and refuses any flipped bit, naming the object', () => {
    const key = MasterKey.random();
    const plain = Buffer.from('a blob of plaintext '.repeat(100));
    const a = key.seal(plain);
    const b = key.seal(plain);
    expect(a.length).toBe(plain.length + SEAL_OVERHEAD);
    expect(a.subarray(0, 16).equals(b.subarray(0, 16))).toBe(false);
    expect(key.open(a, 'x').equals(plain)).toBe(true);
    for (const at of [0, 16, 100, a.length - 1]) {
      const bad = Buffer.from(a);
      bad[at]! ^= 0x20;
      expect(() => key.open(bad, 'index/abc')).toThrow(/index\/abc: the MAC does not match/);
    }
    expect(() => MasterKey.random().open(a, 'config')).toThrow(expect.objectContaining({ code: 'E_INTEGRITY' }));
  });

  it('seals into a buffer at an offset and round-trips through its JSON form', () => {
    const key = MasterKey.random();
    const again = MasterKey.fromJson(JSON.parse(JSON.stringify(key.toJson())));
    const out = Buffer.alloc(200, 0xee);
    const n = key.sealInto(Buffer.from('hello'), out, 50);
    expect(n).toBe(5 + SEAL_OVERHEAD);
    expect(out[49]).toBe(0xee);
    expect(out[50 + n]).toBe(0xee);
    expect(again.open(out.subarray(50, 50 + n), 'x').toString()).toBe('hello');
  });

  it('stores r masked, as restic does', () => {
    const key = new MasterKey(Buffer.alloc(32, 1), Buffer.alloc(16, 2), Buffer.alloc(16, 0xff));
    expect(Buffer.from(key.toJson().mac.r, 'base64').toString('hex')).toBe('ffffff0ffcffff0ffcffff0ffcffff0f');
  });
});
