// A realistic signed-in state for the visual preview and the tests. TEST-ONLY.
import type { ChatMessage, Conversation, EngineState } from '../../engine/types'

const minute = 60_000
const hour = 60 * minute

export function seedState(me: string, now = Date.now()): Partial<EngineState> {
  const server = me.split('@')[1]
  const bob = `bob@${server}`
  const carol = `carol@${server}`
  const dave = `dave@other.example`
  const erin = `erin@${server}`
  const yesterday = now - 26 * hour

  const msg = (id: string, conversationId: string, sender: string, sentAt: number, text: string, extra: Partial<ChatMessage> = {}): ChatMessage => ({
    id, conversationId, sender, outgoing: sender === me, sentAt, text, attachments: [],
    status: sender === me ? 'read' : 'delivered', readBy: sender === me ? [] : [], ...extra,
  })

  const dBob = 'd:' + bob
  const gTrip = 'g:trip'
  const dCarol = 'd:' + carol
  const dDave = 'd:' + dave

  const bobMsgs = [
    msg('s1', dBob, bob, yesterday, 'Did you get the tickets for Saturday?'),
    msg('s2', dBob, me, yesterday + 2 * minute, 'Yes! Two seats, row 12.', { readBy: [bob] }),
    msg('s3', dBob, bob, now - 50 * minute, 'Great. Here is the map of the venue.', {
      attachments: [{ fileId: 'venue-map', name: 'venue-map.png', mime: 'image/png', size: 48_213 }],
    }),
    msg('s4', dBob, me, now - 40 * minute, 'Thanks, see you at the north entrance.\nI will bring the umbrellas.', { status: 'delivered' }),
    msg('s5', dBob, bob, now - 5 * minute, 'Here is the booking confirmation.', {
      attachments: [{ fileId: 'booking', name: 'booking-confirmation.pdf', mime: 'application/pdf', size: 183_422 }],
    }),
    msg('s6', dBob, me, now - 3 * minute, 'This one disappears in a while.', { status: 'sent', expiresAt: now + 55 * minute }),
    msg('s7', dBob, me, now - 1 * minute, 'And this one could not be sent.', { status: 'failed', error: 'The server refused the message: bob@example.org has no keys any more.' }),
  ]
  const tripMsgs = [
    msg('t1', gTrip, erin, now - 3 * hour, 'Cabin is booked for the weekend 🎉'),
    msg('t2', gTrip, carol, now - 2 * hour, 'Who brings the board games?'),
    msg('t3', gTrip, carol, now - 2 * hour + minute, 'I can bring Catan.'),
    msg('t4', gTrip, me, now - 90 * minute, 'I will bring snacks.', { readBy: [carol, erin] }),
    msg('t5', gTrip, erin, now - 20 * minute, 'Leaving at 9 on Friday, ok?'),
  ]
  const carolMsgs = [msg('c1', dCarol, carol, now - 2 * 24 * hour, 'New phone, who dis?')]
  const daveMsgs = [msg('v1', dDave, dave, now - 30 * minute, 'Hi! This is Dave from the other server.'), msg('v2', dDave, dave, now - 29 * minute, 'Can you send me the notes?')]

  const conversations: Conversation[] = [
    { id: dBob, kind: 'direct', title: bob, peer: bob, members: [], unread: 0, retentionSeconds: null, updatedAt: now - minute, lastMessage: bobMsgs.at(-1) },
    { id: gTrip, kind: 'group', title: 'Weekend trip', members: [{ address: me, role: 'owner' }, { address: carol, role: 'admin' }, { address: erin, role: 'member' }], myRole: 'owner', unread: 1, retentionSeconds: 604800, updatedAt: now - 20 * minute, lastMessage: tripMsgs.at(-1) },
    { id: dDave, kind: 'direct', title: dave, peer: dave, members: [], unread: 2, retentionSeconds: null, updatedAt: now - 29 * minute, lastMessage: daveMsgs.at(-1) },
    { id: dCarol, kind: 'direct', title: carol, peer: carol, members: [], unread: 0, retentionSeconds: 86400, updatedAt: now - 2 * 24 * hour, lastMessage: carolMsgs.at(-1) },
  ]
  return {
    me,
    connection: 'online',
    conversations,
    messages: { [dBob]: bobMsgs, [gTrip]: tripMsgs, [dCarol]: carolMsgs, [dDave]: daveMsgs },
    contacts: {
      [bob]: { address: bob, trust: 'verified', wasVerified: false },
      [carol]: { address: carol, trust: 'changed', wasVerified: true },
      [dave]: { address: dave, trust: 'unverified', wasVerified: false },
      [erin]: { address: erin, trust: 'unverified', wasVerified: false },
    },
    defaultRetentionSeconds: null,
    sessionEnded: false,
  }
}
