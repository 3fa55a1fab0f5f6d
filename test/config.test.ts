import t from 'tap'
import { ConfigError, loadConfig } from '../fastify.config.js'

t.test('defaults give a gateway on 127.0.0.1:3000 with the embedded database', async (t) => {
  const c = loadConfig({})
  t.match(c, { port: 3000, host: '127.0.0.1', databaseUrl: null, redisUrl: null, dataDir: '.tessera', logLevel: 'info', publicUrl: 'http://127.0.0.1:3000' })
})

t.test('each bad variable is named in the error', async (t) => {
  t.throws(() => loadConfig({ PORT: 'abc' }), new ConfigError('PORT must be a whole number from 0 to 65535, not "abc"'))
  t.throws(() => loadConfig({ DATABASE_URL: 'mysql://x' }), /DATABASE_URL must use postgres or postgresql/)
  t.throws(() => loadConfig({ REDIS_URL: 'nope' }), /REDIS_URL is not a URL/)
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL must be one of/)
  t.equal(loadConfig({ PUBLIC_URL: 'https://id.example.com/' }).publicUrl, 'https://id.example.com', 'trailing slash dropped')
})

t.test('TRUST_PROXY: off by default; true, a hop count or addresses', async (t) => {
  t.equal(loadConfig({}).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: '1' }).trustProxy, 1)
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8' }).trustProxy, '10.0.0.0/8')
})
