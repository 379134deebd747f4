import { s } from './dom.js';

const W = 640;
const H = 220;
const PAD = { top: 14, right: 12, bottom: 26, left: 34 };

/** A "nice" axis maximum and tick step for counts up to `max`. */
function niceScale(max) {
  if (max <= 4) return { top: 4, step: 1 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw && Number.isInteger(x)) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * Draws the orders of the last minutes (oldest first, the last is the minute
 * now running) as an SVG bar chart.
 */
export function ordersChart(perMinute) {
  const counts = (perMinute || []).map((n) => Number(n) || 0);
  const n = Math.max(counts.length, 1);
  const { top, step } = niceScale(Math.max(0, ...counts));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / n;
  const barW = Math.max(2, slot * 0.68);
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  const svg = s('svg', {
    class: 'chart',
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    preserveAspectRatio: 'xMidYMid meet',
    'data-testid': 'orders-chart',
    'data-values': counts.join(','),
    'aria-label': `Orders per minute over the last ${counts.length} minutes: ${counts.join(', ')}`,
  });

  for (let v = 0; v <= top; v += step) {
    svg.append(
      s('line', { class: 'grid-line', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis-label', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)),
    );
  }

  counts.forEach((count, i) => {
    const x = PAD.left + i * slot + (slot - barW) / 2;
    const isNow = i === counts.length - 1;
    const ago = counts.length - 1 - i;
    const bar = s('rect', {
      class: isNow ? 'bar bar-now' : 'bar',
      x,
      y: y(count),
      width: barW,
      height: Math.max(0, PAD.top + plotH - y(count)),
      rx: 2,
    }, s('title', {}, `${isNow ? 'this minute' : `${ago} min ago`}: ${count} order${count === 1 ? '' : 's'}`));
    svg.append(bar);
    if (count > 0) {
      svg.append(s('text', { class: 'bar-label', x: x + barW / 2, y: y(count) - 3, 'text-anchor': 'middle' }, String(count)));
    }
    if (isNow || ago % 5 === 0) {
      svg.append(s('text', {
        class: 'axis-label',
        x: x + barW / 2,
        y: H - 8,
        'text-anchor': 'middle',
      }, isNow ? 'now' : `−${ago}m`));
    }
  });

  svg.append(s('line', { class: 'axis-line', x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }));
  return svg;
}
