import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectLanguage } from './language.ts';
import { normalizeText } from './normalize.ts';

describe('normalizeText', () => {
  it('joins words hyphenated across lines and keeps real hyphens', () => {
    assert.equal(normalizeText('инфор-\nмация и кто-то\nещё'), 'информация и кто-то ещё');
    assert.equal(normalizeText('exam-\n  ple of e-mail'), 'example of e-mail');
    // A line that ends at the hyphen of a real compound keeps it.
    assert.equal(normalizeText('кто-\nто пришёл, кое-\nкак, где-\nнибудь'), 'кто-то пришёл, кое-как, где-нибудь');
    assert.equal(normalizeText('мес-\nто'), 'место');
    // A dash before a capital (a list, a name) is not hyphenation.
    assert.equal(normalizeText('Parties -\nAcme Ltd'), 'Parties - Acme Ltd');
    assert.equal(normalizeText('soft\u00adhyphen and U+2010 hy\u2010\nphen'), 'softhyphen and U+2010 hyphen');
  });

  it('NFC, ligatures, control and zero-width characters, whitespace and paragraphs', () => {
    assert.equal(normalizeText('e\u0301'), '\u00e9');
    assert.equal(normalizeText('й'.normalize('NFD')), 'й');
    assert.equal(normalizeText('\ufb01nance of\ufb02ow'), 'finance offlow');
    assert.equal(normalizeText('a\u0000b\u0007c\u001bd'), 'a b c d');
    assert.equal(normalizeText('zero\u200bwidth\ufeff join'), 'zerowidth join');
    assert.equal(normalizeText('one\r\n\r\n\r\ntwo  three\tfour\u00a0five'), 'one\n\ntwo three four five');
    assert.equal(normalizeText('line one\nline two\n \n\npara two\u2029para three'), 'line one line two\n\npara two\n\npara three');
    assert.equal(normalizeText('  \n\n  '), '');
  });
});

describe('detectLanguage', () => {
  it('Russian and English prose', () => {
    assert.equal(detectLanguage('Договор вступает в силу с момента подписания'), 'ru');
    assert.equal(detectLanguage('The contract takes effect when it is signed'), 'en');
  });

  it('short texts: single words and headings', () => {
    assert.equal(detectLanguage('Оглавление'), 'ru');
    assert.equal(detectLanguage('Introduction'), 'en');
    assert.equal(detectLanguage('Приложение 3'), 'ru');
    assert.equal(detectLanguage('12345 — 67'), 'simple');
    assert.equal(detectLanguage('12345 — 67', 'ru'), 'ru', 'no letters: the document decides');
    assert.equal(detectLanguage('OK', 'ru'), 'ru', 'too short to tell: the document decides');
  });

  it('mixed texts: the dominant script, then the function words', () => {
    assert.equal(detectLanguage('Отчёт по проекту Apollo за Q3: все задачи выполнены'), 'ru');
    assert.equal(detectLanguage('The API returns поле «статус» in the response body for every request'), 'en');
    assert.equal(detectLanguage('Kubernetes, Docker и Helm: как мы это развернули'), 'ru');
  });

  it('other languages go to the simple configuration', () => {
    assert.equal(detectLanguage('Der Vertrag tritt mit der Unterzeichnung durch beide Parteien in Kraft'), 'simple');
    assert.equal(detectLanguage('Le contrat entre en vigueur à la date de signature par les deux parties'), 'simple');
    assert.equal(detectLanguage('Договір набирає чинності з моменту підписання і діє один рік'), 'simple', 'Ukrainian');
    assert.equal(detectLanguage('数据处理协议'), 'simple');
  });
});
