// A capstone saved in .sor-drills/ for this target: carry on where it stopped, or
// start over. Its finished drills keep their verdicts and evidence; the drill that
// was interrupted starts again from its first step.
import React from 'react';
import { Box } from 'ink';
import { bindingById } from '../console/keys.js';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function ResumeScreen() {
  const resume = useConsole((state) => state.resume);
  if (!resume) return null;
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          Resume capstone ({resume.done} of {resume.total} done)?
        </Span>
        <Span> {bindingById('resume-yes').keys} resumes · {bindingById('resume-no').keys} starts over</Span>
      </Row>
      <Row />
      <Row>
        <Span tone="dim">  target: </Span>
        <Span>{resume.target}</Span>
      </Row>
      <Row>
        <Span tone="dim">  last saved: </Span>
        <Span>{resume.updatedAt}</Span>
      </Row>
      <Row />
      <Row>
        <Span>
          {'  '}Resuming keeps {resume.done === 1 ? 'the finished drill with its verdict' : `the ${resume.done} finished drills with their verdicts`} and
          evidence;
        </Span>
      </Row>
      <Row>
        <Span>  drill {resume.done + 1} starts again from its first step.</Span>
      </Row>
      <Row>
        <Span>  Starting over removes the saved capstone (and its kept PostgreSQL data).</Span>
      </Row>
    </Box>
  );
}
