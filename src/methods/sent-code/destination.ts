// Where codes are sent: a mobile number in E.164 (libphonenumber-js, with its full metadata so a landline
// is told apart), or an e-mail address; and how each is shown masked ("+44 ••• ••• 456", "a•••@example.com").
import { getCountries, getCountryCallingCode, parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max'

export class BadDestination extends Error {
  override name = 'BadDestination'
  statusCode = 422
}

/** Countries for the phone form: code, name, calling code; by name. */
export function countries(): { code: CountryCode; name: string; callingCode: string }[] {
  const names = new Intl.DisplayNames(['en'], { type: 'region' })
  return getCountries().map((code) => ({ code, name: names.of(code) ?? code, callingCode: getCountryCallingCode(code) }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

export function isCountry(code: string): code is CountryCode {
  return (getCountries() as string[]).includes(code)
}

/** A mobile number given with its country (or in international form), as E.164; else BadDestination in words. */
export function parseMobile(number: string, country: string): string {
  const text = number.trim()
  if (!text) throw new BadDestination('Enter your phone number.')
  if (text.length > 32 || !/^[+\d\s().-]+$/.test(text)) throw new BadDestination('Enter a phone number of digits, like 7400 123456.')
  const parsed = parsePhoneNumberFromString(text, isCountry(country) ? country : undefined)
  if (!parsed || !parsed.isValid()) throw new BadDestination("That doesn't look like a phone number. Check the country code and the number.")
  const type = parsed.getType()
  if (type && type !== 'MOBILE' && type !== 'FIXED_LINE_OR_MOBILE' && type !== 'PERSONAL_NUMBER') {
    throw new BadDestination('That number cannot receive text messages. Enter a mobile number.')
  }
  return parsed.number
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/i

export function parseEmail(address: string): string {
  const text = address.trim()
  if (!text) throw new BadDestination('Enter your email address.')
  if (text.length > 254 || !EMAIL.test(text) || /[\p{Cc}\p{Cf}]/u.test(text)) throw new BadDestination('Enter an email address like alice@example.com.')
  const [local, domain] = text.split('@') as [string, string]
  return `${local}@${domain.toLowerCase()}`
}

/** "+44 ••• ••• 456": the country code and the last three digits. */
export function maskMobile(e164: string): string {
  const parsed = parsePhoneNumberFromString(e164)
  const code = parsed ? `+${parsed.countryCallingCode}` : e164.slice(0, 3)
  return `${code} ••• ••• ${e164.slice(-3)}`
}

/** "a•••@example.com": the first letter and the domain. */
export function maskEmail(address: string): string {
  const [local, domain] = address.split('@') as [string, string]
  return `${local.slice(0, 1)}•••@${domain}`
}
