import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
import { slackWebhook, type Receiver, type SlackMessage } from '../../../test/helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from '../../../test/helpers/servers.js';
import slack from '../src/index.js';

const PATH = '/services/T0001/B0001/slackSecretToken42';

describe('slack against a webhook that checks like Slack', () => {
  let http: HttpReceiver;
  let hook: Receiver<SlackMessage>;

  beforeAll(async () => {
    hook = slackWebhook(PATH);
    http = await startHttpReceiver(hook.handler);
  });
  afterAll(async () => {
    await http?.stop();
  });

  it('posts a Block Kit message; the mention goes only on failures', async () => {
    const plugin = slack({ webhook: `${http.url}${PATH}`, mention: '<!here>' });
    await notifyThrough([{ plugin }], sampleRunNotification('failure'));
    await notifyThrough([{ plugin }], sampleRunNotification('recovery'));
    expect(hook.rejected).toEqual([]);
    const [failure, recovery] = hook.accepted;
    expect(failure!.text).toMatch(/^<!here> backup FAILED: test-host \/ daily: sources\.app-db failed at collect/);
    expect(failure!.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'section', 'context']);
    expect(recovery!.text).toMatch(/^backup recovered: test-host \/ daily/);
  });

  it("a revoked webhook (Slack's 404 no_service) fails without a retry and without the URL in the error", async () => {
    const url = `${http.url}/services/T0001/B0001/revokedToken9876`;
    const [result] = await notifyThrough([{ plugin: slack({ webhook: url }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: 'Slack webhook: HTTP 404: no_service' });
  });
});
