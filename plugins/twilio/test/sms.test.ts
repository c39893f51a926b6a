import { describe, expect, it } from 'vitest';
import { fitOneSegment, gsm7Length, smsText } from '../src/index.js';
import { sampleRunNotification } from '@sutazai/backup-testkit';

describe('fitOneSegment', () => {
  it('keeps a short GSM-7 text as it is', () => {
    expect(fitOneSegment('backup FAILED: h / daily')).toBe('backup FAILED: h / daily');
  });

  it('counts the extension table as two septets and cuts at 160 with "..."', () => {
    expect(gsm7Length('a{b}')).toBe(6);
    const long = `${'x'.repeat(150)} {braces} and more`;
    const fitted = fitOneSegment(long);
    expect(gsm7Length(fitted)).toBeLessThanOrEqual(160);
    expect(fitted.endsWith('...')).toBe(true);
    expect(fitted.startsWith('x'.repeat(150))).toBe(true);
  });

  it('turns typographic characters into GSM-7 look-alikes instead of falling back to UCS-2', () => {
    const text = `backup FAILED – “app-db” didn’t dump… ${'y'.repeat(60)}`;
    const fitted = fitOneSegment(text);
    expect(fitted).toBe(`backup FAILED - "app-db" didn't dump... ${'y'.repeat(60)}`);
    expect(gsm7Length(fitted)).toBeDefined();
  });

  it('keeps a short text that needs UCS-2, and replaces odd characters when it would not fit 70', () => {
    expect(fitOneSegment('backup ok: 数据库')).toBe('backup ok: 数据库');
    const long = `backup FAILED on 数据库 ${'z'.repeat(80)}`;
    const fitted = fitOneSegment(long);
    expect(fitted).toBe(`backup FAILED on ??? ${'z'.repeat(80)}`);
    expect(gsm7Length(fitted)).toBeLessThanOrEqual(160);
  });

  it('an SMS names outcome, host, profile, the failed source and stage', () => {
    const text = smsText(sampleRunNotification('failure'));
    expect(text).toBe('backup FAILED: test-host / daily. sources.app-db failed at collect: pg_dump exited with code 1: connection refused');
    expect(gsm7Length(text)).toBeLessThanOrEqual(160);
  });
});
