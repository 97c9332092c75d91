// The events-over-time chart: an inline SVG bar chart of a histogram from
// GET /v1/stats/histogram, drawn here without any library. It redraws
// itself when its box changes size, and a click on a bar narrows the time
// range to that bar.

import { h, plural, replace, s } from './dom.js';

const HEIGHT = 148;
const PAD = { top: 10, right: 8, bottom: 22, left: 44 };
const STEP_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };

// chooseInterval picks the bucket size for a span of time.
export function chooseInterval(spanMs) {
  if (spanMs <= 6 * 3600e3) return 'minute';
  if (spanMs <= 14 * 86400e3) return 'hour';
  return 'day';
}

// niceCeiling rounds n up to 1, 2 or 5 times a power of ten.
function niceCeiling(n) {
  if (n <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

// tickLabel formats a bucket start for the x axis (UTC).
function tickLabel(d, interval, withDate) {
  const date = `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  if (interval === 'day') return date;
  const time = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  return withDate ? `${date} ${time}` : time;
}

function bucketTitle(d, interval, count) {
  const iso = d.toISOString();
  const when = interval === 'day' ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
  const span = { minute: 'minute', hour: 'hour', day: 'day' }[interval];
  return `${when} UTC (${span}): ${plural(count, 'event')}`;
}

// Chart is the chart in its figure.
export class Chart {
  // onPick(since, until) is called when a bar is chosen.
  constructor(onPick) {
    this.onPick = onPick;
    this.caption = h('figcaption', { class: 'chart-caption' });
    this.area = h('div', { class: 'chart-area' });
    this.el = h('figure', { class: 'chart', id: 'chart' }, this.caption, this.area);
    this.hist = null;
    this.observer = new ResizeObserver(() => this.hist && this.draw());
    this.observer.observe(this.area);
  }

  // loading shows that a histogram is on its way, keeping the chart's size.
  loading(caption) {
    this.hist = null;
    this.caption.textContent = caption;
    replace(this.area, h('div', { class: 'chart-note' }, 'Loading…'));
  }

  // message shows text in place of bars (no data, an error).
  message(caption, text, isError) {
    this.hist = null;
    this.caption.textContent = caption;
    replace(this.area, h('div', { class: isError ? 'chart-note chart-error' : 'chart-note', role: isError ? 'alert' : null }, text));
  }

  show(hist, caption) {
    this.hist = hist;
    this.captionText = caption;
    this.draw();
  }

  draw() {
    const { buckets, interval, total } = this.hist;
    // The count of events is in the page's heading; the histogram, asked
    // later, may also hold the reads the page itself just made.
    this.caption.textContent = this.captionText;
    if (total === 0) {
      replace(this.area, h('div', { class: 'chart-note' }, 'No events in this time range.'));
      return;
    }
    const width = Math.max(320, Math.floor(this.area.clientWidth || 800));
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const peak = Math.max(...buckets.map((b) => b.count));
    const top = niceCeiling(peak);
    const slot = plotW / buckets.length;
    const gap = slot > 4 ? Math.min(2, slot * 0.2) : 0;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    const peakBucket = buckets.find((b) => b.count === peak);
    const svg = s('svg', {
      viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img',
      'aria-label': `${this.captionText}: ${buckets.length} bars of one ${interval}; ` +
        `busiest ${bucketTitle(new Date(peakBucket.start), interval, peak)}`,
    });
    for (const v of [0, top / 2, top]) {
      svg.append(
        s('line', { class: 'grid', x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }),
        s('text', { class: 'axis', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, Number.isInteger(v) ? v.toLocaleString('en-US') : ''));
    }
    const bars = s('g', { class: 'bars' });
    buckets.forEach((b, i) => {
      if (b.count === 0) return;
      const start = new Date(b.start);
      const top = y(b.count);
      const rect = s('rect', {
        x: PAD.left + i * slot + gap / 2, y: top, width: Math.max(1, slot - gap), height: Math.max(1, PAD.top + plotH - top),
        onclick: () => this.onPick(start, new Date(start.getTime() + STEP_MS[interval])),
      }, s('title', {}, bucketTitle(start, interval, b.count) + ' — click to show only these'));
      bars.append(rect);
    });
    svg.append(bars);
    const ticks = Math.max(2, Math.min(8, Math.floor(plotW / 110)));
    const every = Math.max(1, Math.ceil(buckets.length / ticks));
    let lastDay = '';
    for (let i = 0; i < buckets.length; i += every) {
      const d = new Date(buckets[i].start);
      const day = d.toISOString().slice(0, 10);
      svg.append(s('text', { class: 'axis', x: PAD.left + i * slot, y: HEIGHT - 6, 'text-anchor': i === 0 ? 'start' : 'middle' },
        tickLabel(d, interval, day !== lastDay)));
      lastDay = day;
    }
    replace(this.area, svg);
  }

  leave() {
    this.observer.disconnect();
  }
}
