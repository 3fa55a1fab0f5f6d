// Server-rendered pages: ejs templates in views/ with one layout, and the stylesheet under /assets.
// Each template (and each partial it includes) is read and compiled once per process; with
// NODE_ENV=development they are read again at every render, so an edited template shows without a restart.
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
  const compileOnce = process.env.NODE_ENV !== 'development'
  await app.register(view, {
    engine: { ejs },
    root: path.join(ROOT, 'views'),
    layout: 'layout.ejs',
    viewExt: 'ejs',
    defaultContext: { title: 'Tessera', user: null, upstream: null, csrfToken: '', errors: {}, values: {}, plural, when },
    // production: @fastify/view keeps each page's compiled function; cache: ejs keeps each included partial's.
    production: compileOnce,
    options: { async: false, cache: compileOnce },
  })
  await app.register(fastifyStatic, { root: path.join(ROOT, 'public'), prefix: '/assets/', index: false, maxAge: '1h' })
  // Browsers ask for /favicon.ico whatever the page says: the same icon, as SVG (which they all draw).
  app.get('/favicon.ico', (_request, reply) => reply.header('cache-control', 'public, max-age=86400').type('image/svg+xml').sendFile('favicon.svg'))
}

export default fp(viewsPlugin, { name: 'views' })
