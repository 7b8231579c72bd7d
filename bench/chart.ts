/** A bar chart of ratios as SVG, each bar with its target marked: no dependencies, one picture. */
export function ratioChart(bars: readonly (readonly [label: string, ratio: number, target: number])[]): string {
  const width = 640;
  const row = 34;
  const left = 190;
  const max = Math.max(1.5, ...bars.map(([, r, t]) => Math.max(r, t))) * 1.1;
  const x = (v: number) => left + (v / max) * (width - left - 60);
  const body = bars
    .map(([label, ratio, target], i) => {
      const y = 30 + i * row;
      const ok = ratio >= target;
      return [
        `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${label}</text>`,
        `<rect x="${left}" y="${y}" width="${(x(ratio) - left).toFixed(1)}" height="20" fill="${ok ? '#059669' : '#dc2626'}"/>`,
        `<line x1="${x(target).toFixed(1)}" x2="${x(target).toFixed(1)}" y1="${y - 3}" y2="${y + 23}" stroke="#1d2433" stroke-dasharray="3,2"/>`,
        `<text x="${(x(ratio) + 6).toFixed(1)}" y="${y + 15}">${ratio.toFixed(2)}×</text>`,
      ].join('');
    })
    .join('\n');
  const height = 40 + bars.length * row;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="Helvetica, sans-serif" font-size="12">
<text x="${left}" y="16" fill="#56607a">Baton ÷ baseline (dashed line: target)</text>
${body}
<line x1="${x(1).toFixed(1)}" x2="${x(1).toFixed(1)}" y1="24" y2="${height - 6}" stroke="#8a93a8"/>
</svg>
`;
}
