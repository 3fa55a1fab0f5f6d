// `tessera --version`: the version of package.json, exit 0, with no database needed.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { tessera } from '../helpers/cli.js'

t.test('tessera --version prints the version of package.json', async (t) => {
  const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'))
  const run = await tessera(['--version'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
  t.equal(run.code, 0)
  t.equal(run.stdout.trim(), `tessera ${version}`)
})
