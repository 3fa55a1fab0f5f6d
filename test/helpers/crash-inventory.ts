// The inventory the crash test imports, the same each time it is generated: n Entra rows, serials CR-00000...
import { seedOf } from './seeds.js'

export async function* crashInventory(n: number): AsyncGenerator<string> {
  yield 'upn,serial number,secret key,time interval,manufacturer,model\n'
  for (let i = 0; i < n; i += 1000) {
    let chunk = ''
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const serial = `CR-${String(j).padStart(5, '0')}`
      chunk += `,${serial},${seedOf(serial).b32},30,Token2,C202\n`
    }
    yield chunk
  }
}
