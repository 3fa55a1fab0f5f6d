// Server-rendered pages: ejs templates in views/ with one layout, and the stylesheet under /assets.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import { plural, when } from '../src/routes/words.js'
import view from '@fastify/view'
import fastifyStatic from '@fastify/static'
import ejs from 'ejs'
import type { FastifyInstance } from 'fastify'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function viewsPlugin(app: FastifyInstance): Promise<void> {
  await app.register(view, {
    engine: { ejs },
    root: path.join(ROOT, 'views'),
    layout: 'layout.ejs',
    viewExt: 'ejs',
    defaultContext: { title: 'Tessera', user: null, upstream: null, csrfToken: '', errors: {}, values: {}, plural, when },
    options: { async: false },
  })
  await app.register(fastifyStatic, { root: path.join(ROOT, 'public'), prefix: '/assets/', index: false, maxAge: '1h' })
  // Browsers ask for /favicon.ico whatever the page says: the same icon, as SVG (which they all draw).
  app.get('/favicon.ico', (_request, reply) => reply.header('cache-control', 'public, max-age=86400').type('image/svg+xml').sendFile('favicon.svg'))
}

export default fp(viewsPlugin, { name: 'views' })
