import t from 'tap'
import { detectFormat, parseInventory } from '../../src/import/index.js'

async function* text(s: string) {
  yield s
}

t.test("detectFormat knows Entra's header, with a BOM, any case, spaces and quotes", async (t) => {
  t.equal(detectFormat('upn,serial number,secret key,time interval,manufacturer,model'), 'entra')
  t.equal(detectFormat('\uFEFFUPN, Serial Number ,"secret key",Time Interval,manufacturer,MODEL\r\n'), 'entra')
  t.equal(detectFormat('upn,serial number,secret key,time interval,manufacturer'), null)
  t.equal(detectFormat('OATH0001, 3132333435363738393031323334353637383930, totp, 6, 30'), null)
  t.equal(detectFormat('# version: 2'), null)
  t.equal(detectFormat('"unclosed,serial number'), null)
  t.equal(detectFormat(''), null)
})

t.test('parseInventory hands the file to the parser of the format', async (t) => {
  const entra = []
  for await (const row of parseInventory('entra', text('upn,serial number,secret key,time interval,manufacturer,model\n,E1,JBSWY3DPEHPK3PXP,30,,\n'))) entra.push(row)
  t.match(entra, [{ ok: true, token: { serial: 'E1', kind: 'totp' } }])
  const oath = []
  for await (const row of parseInventory('oath', text('O1, 3132333435363738393031323334353637383930, hotp\n'))) oath.push(row)
  t.match(oath, [{ ok: true, token: { serial: 'O1', kind: 'hotp' } }])
  t.throws(() => parseInventory('xml' as never, text('')), /unknown inventory format "xml"/)
})
