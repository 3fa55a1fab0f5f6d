// Inline read model `tokens`: each token's state as the domain folds it, with its stream version.
import { TOKEN_EVENT_TYPES, type TokenEvent } from '../domain/token/events.js'
import { evolve, initialState, type TokenState } from '../domain/token/state.js'
import { rowFromState, stateFromRow, type TokensTable } from '../read-models/tokens.js'
import { stateProjection } from './fold.js'

export const tokensProjection = stateProjection<TokenState, TokenEvent, TokensTable & Record<string, unknown>>({
  name: 'tokens',
  table: 'tokens',
  key: 'serial',
  prefix: 'token-',
  handles: TOKEN_EVENT_TYPES,
  initial: initialState,
  evolve,
  fromRow: stateFromRow,
  toRow: (state) => rowFromState(state) as TokensTable & Record<string, unknown>,
})
