const dollars = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const integer = new Intl.NumberFormat('en-US');

/** Formats integer cents as dollars: 123456 → "$1,234.56". */
export const formatCents = (cents) => dollars.format((Number(cents) || 0) / 100);

export const formatInt = (n) => integer.format(Number(n) || 0);

export function formatTime(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString('en-GB', { hour12: false });
}
