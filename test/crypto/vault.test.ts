import t from 'tap'
import { randomBytes } from 'node:crypto'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'

const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))

t.test('a sealed seed opens to the same bytes under its serial, and under no other', async (t) => {
  const seed = randomBytes(20)
  const sealed = vault.seal('1234567', seed)
  t.equal(sealed.nonce.length, 12)
  t.equal(sealed.ciphertext.length, 20 + 16, 'ciphertext and GCM tag')
  t.same(vault.open('1234567', sealed), seed)
  t.throws(() => vault.open('7654321', sealed), /does not decrypt/)
  const altered = Buffer.from(sealed.ciphertext)
  altered[0]! ^= 1
  t.throws(() => vault.open('1234567', { ...sealed, ciphertext: altered }), /does not decrypt/)
})

t.test('every seal has a nonce of its own, across many draws from the random source', async (t) => {
  const seed = randomBytes(16)
  const nonces = new Set<string>()
  const sealed = []
  for (let i = 0; i < 2000; i++) {
    const s = vault.seal(`s${i}`, seed)
    nonces.add(s.nonce.toString('hex'))
    sealed.push(s)
  }
  t.equal(nonces.size, 2000)
  t.ok(sealed.every((s, i) => vault.open(`s${i}`, s).equals(seed)), 'later seals leave earlier ones intact')
})
