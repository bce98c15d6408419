// The Ink root: the transcript of what is done (in <Static>, printed once above
// the live region), then the screen the store names, a status row and the
// footer. It picks the screen and hands every key to the one key router;
// nothing else happens here.
import React from 'react';
import { Box, Static, Text, useInput, useStdin } from 'ink';
import type { KeyHandler } from './console/key-router.js';
import { screenHeight, tooSmall } from './console/layout.js';
import { useConsole, type HistoryLine, type Screen } from './store.js';
import { BootScreen } from './screens/BootScreen.js';
import { ConsentScreen } from './screens/ConsentScreen.js';
import { DecisionScreen } from './screens/DecisionScreen.js';
import { DrillListScreen } from './screens/DrillListScreen.js';
import { DrillScreen } from './screens/DrillScreen.js';
import { ExitScreen } from './screens/ExitScreen.js';
import { FleetScreen } from './screens/FleetScreen.js';
import { Footer } from './screens/Footer.js';
import { HelpScreen } from './screens/HelpScreen.js';
import { MasteryScreen } from './screens/MasteryScreen.js';
import { ResumeScreen } from './screens/ResumeScreen.js';
import { Row, Span } from './screens/theme.js';
import { TooSmall } from './screens/TooSmall.js';

function ScreenView({ screen, height }: { screen: Screen; height: number }) {
  switch (screen.name) {
    case 'boot':
      return <BootScreen height={height} />;
    case 'consent':
      return <ConsentScreen height={height} />;
    case 'resume':
      return <ResumeScreen />;
    case 'list':
      return <DrillListScreen height={height} />;
    case 'drill':
      return <DrillScreen height={height} />;
    case 'decision':
      return <DecisionScreen height={height} />;
    case 'mastery':
      return <MasteryScreen height={height} />;
    case 'fleet':
      return <FleetScreen height={height} />;
    case 'help':
      return <HelpScreen height={height} />;
    case 'exiting':
      return <ExitScreen height={height} />;
  }
}

function HistoryItem({ line }: { line: HistoryLine }) {
  return <Span tone={line.tone}>{line.text || ' '}</Span>;
}

function StatusRow() {
  const confirm = useConsole((state) => state.confirmQuit);
  const notice = useConsole((state) => state.notice);
  if (confirm) {
    return (
      <Row>
        <Span tone="warn" bold>
          {confirm}
        </Span>
      </Row>
    );
  }
  return <Row>{notice ? <Span tone={notice.tone}>{notice.text}</Span> : null}</Row>;
}

/** Routes keys only where raw mode exists: useInput throws on a stdin that cannot do it. */
function KeyInput({ onKey }: { onKey: KeyHandler }) {
  const { isRawModeSupported } = useStdin();
  useInput(onKey, { isActive: Boolean(isRawModeSupported) });
  return null;
}

export function App({ onKey }: { onKey: KeyHandler }) {
  const screen = useConsole((state) => state.screen);
  const terminal = useConsole((state) => state.terminal);
  const history = useConsole((state) => state.history);
  const height = useConsole(screenHeight);
  const small = tooSmall(terminal);
  return (
    <>
      <KeyInput onKey={onKey} />
      <Static items={history}>{(line) => <Text key={line.id}><HistoryItem line={line} /></Text>}</Static>
      {small ? (
        <TooSmall />
      ) : (
        <Box flexDirection="column">
          <ScreenView screen={screen} height={height} />
          {screen.name === 'exiting' ? null : (
            <>
              <Row>
                <Span tone="dim">{'─'.repeat(Math.max(1, terminal.columns - 1))}</Span>
              </Row>
              <StatusRow />
              <Footer />
            </>
          )}
        </Box>
      )}
    </>
  );
}
